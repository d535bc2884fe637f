import { PgPubSubError } from '../errors.ts';
import { MAX_TIMER_MS } from '../timeouts.ts';
import type { Rate } from './listener-options.ts';

const PER: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };

/** `{ limit, perMs }` of a `rate` option, or a clear error naming the channel. */
export function parseRate(rate: Rate, channel: string): { limit: number; perMs: number } {
  let parsed: { limit: number; perMs: number } | undefined;
  if (typeof rate === 'string') {
    const match = /^\s*(\d+)\s*\/\s*(s|m|h)\s*$/.exec(rate);
    if (match) parsed = { limit: Number(match[1]), perMs: PER[match[2]!]! };
  } else if (rate && typeof rate === 'object') {
    parsed = { limit: rate.limit, perMs: rate.perMs };
  }
  if (
    !parsed ||
    !Number.isInteger(parsed.limit) ||
    parsed.limit < 1 ||
    !Number.isFinite(parsed.perMs) ||
    parsed.perMs <= 0 ||
    parsed.perMs > MAX_TIMER_MS
  ) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `.on("${channel}"): \`rate\` must be { limit: positive integer, perMs: milliseconds up to ${MAX_TIMER_MS} } or a string like '100/s', '20/m', '500/h'; got ${JSON.stringify(rate)}.`,
    );
  }
  return parsed;
}

/**
 * A sliding-window limit on handler starts in one process: at most `limit` starts in any window of
 * `perMs`. It keeps the times of the last `limit` starts (monotonic clock), so it never lets a burst
 * of twice the limit through across a window boundary, as a token bucket or fixed window would.
 */
export class RateLimiter {
  private readonly starts: number[] = [];

  constructor(
    readonly limit: number,
    readonly perMs: number,
  ) {}

  private prune(now: number): void {
    while (this.starts.length > 0 && this.starts[0]! <= now - this.perMs) this.starts.shift();
  }

  /** How many handlers may start now. */
  available(now = performance.now()): number {
    this.prune(now);
    return this.limit - this.starts.length;
  }

  /** Milliseconds until one more handler may start (0: now). */
  waitMs(now = performance.now()): number {
    this.prune(now);
    if (this.starts.length < this.limit) return 0;
    return Math.max(0, this.starts[0]! + this.perMs - now);
  }

  /** Records a start if one is allowed now; returns whether it was. */
  tryTake(now = performance.now()): boolean {
    if (this.available(now) <= 0) return false;
    this.starts.push(now);
    return true;
  }

  /** Waits (at most a window, then again) until a start is allowed, and records it; rejects on `signal`. */
  async take(signal: AbortSignal): Promise<void> {
    while (!this.tryTake()) {
      if (signal.aborted) throw signal.reason ?? new Error('aborted');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(MAX_TIMER_MS, Math.ceil(this.waitMs()) + 1));
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }
}
