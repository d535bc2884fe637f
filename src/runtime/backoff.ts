/** How long to wait before the next attempt, given the attempt that just failed (1-based). */
export type Backoff = (failedAttempt: number) => number;

/** Options of {@link exponentialBackoff}. */
export interface ExponentialBackoffOptions {
  /** Delay after the first failure, in ms. Default 1000. */
  initialMs?: number;
  /** Growth factor per attempt. Default 2. */
  factor?: number;
  /** Upper bound, in ms. Default one hour. */
  maxMs?: number;
  /** Random spread, as a fraction of the delay (0.2 = ±20%). Default 0.2. */
  jitter?: number;
}

/** Exponential backoff with jitter and a cap: 1 s, 2 s, 4 s … (±20%), at most one hour. */
export function exponentialBackoff(options: ExponentialBackoffOptions = {}): Backoff {
  const { initialMs = 1000, factor = 2, maxMs = 3_600_000, jitter = 0.2 } = options;
  return (attempt) => {
    const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt - 1));
    return Math.max(0, Math.round(base * (1 + jitter * (2 * Math.random() - 1))));
  };
}

/** Default number of attempts before a notification is dead-lettered (`status = 'failed'`). */
export const DEFAULT_MAX_ATTEMPTS = 10;
