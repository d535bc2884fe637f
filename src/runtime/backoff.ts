import { PgPubSubError } from '../errors.ts';

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

/** The delay used when a `backoff` function returns something that is not a delay. */
const FALLBACK_BACKOFF = exponentialBackoff();

/** The delay before the next attempt, and the problem when the `backoff` function gave no usable one. */
export interface RetryDelay {
  delayMs: number;
  /** Set when `backoff` returned (or threw) something other than a finite number of ms ≥ 0. */
  problem?: PgPubSubError;
}

/**
 * Calls a `backoff` function and checks its answer (issue 14, item 16): `undefined`, NaN, a negative
 * number or Infinity would store an unusable `run_at` (the claim fails and retries forever) or retry
 * in a busy loop. A bad answer is replaced by the default exponential delay and reported as a
 * problem, which the caller records with the attempt's error.
 */
export function retryDelay(backoff: Backoff, failedAttempt: number, channel: string): RetryDelay {
  let value: unknown;
  try {
    value = backoff(failedAttempt);
  } catch (error) {
    return {
      delayMs: FALLBACK_BACKOFF(failedAttempt),
      problem: new PgPubSubError(
        'INVALID_OPTIONS',
        `The backoff function of "${channel}" threw for attempt ${failedAttempt} (${error instanceof Error ? error.message : String(error)}); the default exponential delay was used. Fix the backoff function.`,
        { cause: error },
      ),
    };
  }
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return { delayMs: value };
  return {
    delayMs: FALLBACK_BACKOFF(failedAttempt),
    problem: new PgPubSubError(
      'INVALID_OPTIONS',
      `The backoff function of "${channel}" returned ${typeof value === 'number' ? String(value) : typeof value === 'string' ? JSON.stringify(value) : String(value)} for attempt ${failedAttempt}; it must return a finite number of milliseconds ≥ 0. The default exponential delay was used. Fix the backoff function.`,
    ),
  };
}

/** The error to record for a failed attempt: the handler's, or the backoff problem caused by it. */
export function withProblem(error: unknown, problem: PgPubSubError | undefined): unknown {
  if (!problem) return error;
  return new PgPubSubError(problem.code, problem.message, { cause: error });
}
