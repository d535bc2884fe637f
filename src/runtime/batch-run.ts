import { PgPubSubError } from '../errors.ts';
import { retryDelay, withProblem } from './backoff.ts';
import type { Claimed } from './claim-decode.ts';
import type { ClaimOutcome, Registration } from './claim-types.ts';
import { HandlerEvent, HardStop, type StopGuard } from './handler-run.ts';
import type { HandlerScope } from './handler-tx.ts';
import type { BatchResult } from './listener-options.ts';
import { SessionExpired } from './session-clock.ts';

type Failure = { id: string; error: unknown; delayMs: number; dead: boolean };

/**
 * Runs a batch handler (`listener.onBatch`) once for every decodable notification of a claim, in one
 * savepoint of the claim transaction. Undecodable ones become dead letters as in a per-event claim.
 * The events the handler names in `{ failed }` get a failed attempt, the others are handled (their
 * ids go to `done`, deleted at commit); a thrown error rolls the handler's writes back and fails
 * every event of the call.
 */
export async function runBatchHandler(
  reg: Registration,
  batch: Claimed[],
  scope: HandlerScope,
  guard: StopGuard,
  outcome: ClaimOutcome,
  done: string[],
  failures: Failure[],
): Promise<void> {
  const fail = (item: Claimed, error: unknown, poison = false) => {
    const { id, attempt } = item.meta;
    const dead = poison || attempt >= reg.maxAttempts;
    const retry = dead ? { delayMs: 0 } : retryDelay(reg.backoff, attempt, reg.channel.name);
    failures.push({
      id,
      error: poison ? error : withProblem(error, retry.problem),
      delayMs: retry.delayMs,
      dead,
    });
    outcome.failed.push({
      id,
      attempt,
      error,
      retryAt: dead ? null : new Date(Date.now() + retry.delayMs),
      dead,
    });
  };
  const ready: Claimed[] = [];
  for (const item of batch) {
    if (item.body === undefined) fail(item, item.poison, true);
    else ready.push(item);
  }
  if (ready.length === 0) return;
  const events = ready.map((item) => new HandlerEvent(item.meta, item.body!));
  const started = performance.now();
  let failed: Map<string, unknown>;
  try {
    // node-postgres builds the handler's Drizzle transaction asynchronously: before the handler runs
    // (a no-op on postgres.js, where it is built on first use).
    await scope.prepare();
    const result = await guard.invoke(reg, events, scope, () => reg.handler(events, scope.tx));
    // A result that names events outside the batch fails the whole call, like a throw.
    failed = failedIds(reg, result, new Set(ready.map((item) => item.meta.id)));
    scope.commit();
  } catch (error) {
    if (error instanceof HardStop || error instanceof SessionExpired) throw error;
    await scope.rollback();
    for (const item of ready) fail(item, error);
    return;
  }
  const durationMs = (performance.now() - started) / ready.length;
  for (const item of ready) {
    const error = failed.get(item.meta.id);
    if (failed.has(item.meta.id)) {
      fail(item, error);
    } else {
      done.push(item.meta.id);
      outcome.processed.push({ id: item.meta.id, attempt: item.meta.attempt, durationMs });
    }
  }
}

/** The ids a batch handler's result names as failed, checked against the batch it got. */
function failedIds(reg: Registration, result: unknown, ids: Set<string>): Map<string, unknown> {
  const failed = new Map<string, unknown>();
  if (result === undefined || result === null) return failed;
  const list = (result as BatchResult).failed;
  if (list === undefined) return failed;
  if (!Array.isArray(list)) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `The batch handler of "${reg.channel.name}" returned { failed } that is not an array; return { failed: [{ event, error }] } or nothing.`,
    );
  }
  for (const entry of list) {
    const id = (entry as { event?: { id?: unknown } } | undefined)?.event?.id;
    if (typeof id !== 'string' || !ids.has(id)) {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `The batch handler of "${reg.channel.name}" named a failed event that is not in its batch (${JSON.stringify(id)}); name events of the batch: { failed: [{ event, error }] }.`,
      );
    }
    failed.set(id, entry.error ?? new Error('The batch handler reported this event as failed.'));
  }
  return failed;
}
