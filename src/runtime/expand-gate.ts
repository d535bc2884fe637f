/**
 * When a listener expands a channel's packed rows (storage version 5) ahead of a claim.
 *
 * `expand_packed()` costs a claim ~0.1 ms of server time even when nothing is packed, so a claim
 * pays it only when it may find something: while the last expansion found a row, or once
 * {@link EXPAND_CHECK_MS} has passed since the last look. Nothing waits longer for it: a listener
 * that runs out of work probes before it sleeps, and the probe always expands (runtime/idle.ts), so
 * a packed statement is late by at most that interval only while other events of its channel keep
 * the listener busy.
 */

/** How often a busy listener looks for packed rows of a channel when the last look found none, ms. */
export const EXPAND_CHECK_MS = 250;

/** Per channel of one listener: whether the next claim should expand first. */
export class ExpandGate {
  private found = true;
  private lookedAt = Number.NEGATIVE_INFINITY;

  /** Whether a claim starting at `now` (performance.now()) should expand first. */
  due(now: number): boolean {
    return this.found || now - this.lookedAt >= EXPAND_CHECK_MS;
  }

  /** What an expansion started at `now` did: `expanded` events, or `null` when it failed. */
  record(now: number, expanded: number | null): void {
    this.lookedAt = now;
    // A failed look counts as "maybe": the next claim tries again.
    this.found = expanded === null || expanded > 0;
  }
}
