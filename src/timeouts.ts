/**
 * The two ways this package bounds a wait: {@link within} fails when time runs out, {@link waitAtMost}
 * just stops waiting. Every timeout race goes through one of them.
 */

/** The longest delay `setTimeout` takes (2^31 - 1 ms, ~24.8 days); Node fires longer ones after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Resolves `promise`, or rejects with `onTimeout()` after `ms`. The timer never keeps Node alive. */
export function within<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), Math.min(ms, MAX_TIMER_MS));
    timer.unref?.();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Waits for `promise` at most `ms`: resolves `true` when it settled in time, `false` when the time ran
 * out (the promise keeps running). Rejects when `promise` rejects in time. The timer does not keep
 * Node alive unless `unref: false`.
 */
export async function waitAtMost(
  promise: Promise<unknown>,
  ms: number,
  options: { unref?: boolean } = {},
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.min(ms, MAX_TIMER_MS));
    if (options.unref !== false) timer.unref?.();
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
