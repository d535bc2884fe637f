import { MAX_SUBTRANSACTIONS } from './claim-sql.ts';
import type { ClaimCursor, ClaimOutcome, Registration } from './claim-types.ts';

/**
 * Pacing: the per-channel state the scheduler keeps and the pure rules over it (batch size, when a
 * claim starts from the head, how the batch size adapts, backoff after errors). No I/O here, so
 * test/unit/pacing.test.ts covers it without a database.
 */

/** A batch is sized so its handlers, one after another, take about this long (rows stay locked meanwhile). */
export const BATCH_TARGET_MS = 200;
/** While claims overlap, one claim per this interval starts from the head again (stragglers, released rows). */
export const LEAD_INTERVAL_MS = 1000;

/** True when cursor `a` comes after `b` in claim order. */
export function isAfter(a: ClaimCursor, b: ClaimCursor): boolean {
  const runAt = BigInt(a.runAtUs) - BigInt(b.runAtUs);
  return runAt > 0n || (runAt === 0n && BigInt(a.id) > BigInt(b.id));
}

/** What the scheduler knows about one channel. */
export interface ChannelState {
  reg: Registration;
  /** Work may be waiting: claim again. */
  dirty: boolean;
  /** Bumped by every hint, so a claim can tell whether a hint arrived while it ran. */
  gen: number;
  /** `gen` when the latest claim was launched: a hint since then is not covered by a running claim. */
  launchedGen: number;
  inflight: number;
  /** Claims whose rows are not locked yet. */
  selecting: number;
  /** The last claim came back full: more claims may run side by side. */
  full: boolean;
  /** The last row locked by this process's in-flight claims: overlapping claims start after it. */
  frontier: ClaimCursor | null;
  /** When the last claim that starts from the head (a lead) was launched. */
  leadAt: number;
  /** A claim that started after the frontier came back short: the next one starts from the head. */
  needLead: boolean;
  /** Recent average handler duration (ms), to size batches. */
  avgMs: number | undefined;
  /** Handlers write: keep batches within the subtransaction budget. */
  writeLimited: boolean;
  /** Claims left to run one notification at a time, after a claim transaction failed. */
  careful: number;
  errors: number;
  lastError: unknown;
  notBefore: number;
  timer: NodeJS.Timeout | undefined;
  timerAt: number;
  /** Lease handlers of this channel running now (they hold no claim transaction). */
  leaseRunning: number;
  /** A batch channel lets events accumulate until then (`maxWaitMs`) before it claims a short batch. */
  batchDueAt: number | undefined;
}

/** The state of a channel nothing is known about yet: dirty, so it is claimed at start (recovery). */
export function newChannelState(reg: Registration): ChannelState {
  return {
    reg,
    dirty: true,
    gen: 0,
    launchedGen: -1,
    inflight: 0,
    selecting: 0,
    full: false,
    frontier: null,
    leadAt: 0,
    needLead: false,
    avgMs: undefined,
    writeLimited: false,
    careful: 0,
    errors: 0,
    lastError: undefined,
    notBefore: 0,
    timer: undefined,
    timerAt: 0,
    leaseRunning: 0,
    batchDueAt: undefined,
  };
}

/** The batch size for the next claim of a channel. */
export function batchLimit(
  state: Pick<ChannelState, 'careful' | 'writeLimited' | 'avgMs'>,
  batchSize: number,
): number {
  if (state.careful > 0) return 1;
  let limit = batchSize;
  if (state.writeLimited) limit = Math.min(limit, MAX_SUBTRANSACTIONS);
  if (state.avgMs !== undefined && state.avgMs > 0) {
    limit = Math.min(limit, Math.max(1, Math.floor(BATCH_TARGET_MS / state.avgMs)));
  }
  return limit;
}

/** Whether the next claim starts from the head of the queue (a lead) rather than after the frontier. */
export function isLead(
  state: Pick<ChannelState, 'inflight' | 'careful' | 'needLead' | 'frontier' | 'leadAt'>,
  now: number,
): boolean {
  return (
    state.inflight === 1 ||
    state.careful > 0 ||
    state.needLead ||
    state.frontier === null ||
    now - state.leadAt >= LEAD_INTERVAL_MS
  );
}

/** Adapts batch sizes to what the handlers did: their duration, and whether they write. */
export function learn(state: Pick<ChannelState, 'writeLimited' | 'avgMs'>, outcome: ClaimOutcome): void {
  state.writeLimited = outcome.released > 0 || outcome.subtransactions >= MAX_SUBTRANSACTIONS / 2;
  if (outcome.processed.length === 0) return;
  let total = 0;
  for (const p of outcome.processed) total += p.durationMs;
  const mean = total / outcome.processed.length;
  state.avgMs = state.avgMs === undefined ? mean : state.avgMs * 0.7 + mean * 0.3;
}

/** How long a channel waits after its `errors`-th failed claim transaction in a row: 100 ms doubling, at most 30 s. */
export function errorBackoffMs(errors: number): number {
  return Math.min(30_000, 50 * 2 ** Math.min(errors, 10));
}
