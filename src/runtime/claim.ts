import type postgres from 'postgres';
import { PgPubSubError } from '../errors.ts';
import { arrayLiteral } from '../identifiers.ts';
import { orderModeOf, PULL_FORWARD_SETTINGS, pullForwardSql } from '../storage/ordered.ts';
import { CONTEXT_SETTING } from '../storage/sql-names.ts';
import { waitAtMost, within } from '../timeouts.ts';
import { retryDelay, withProblem } from './backoff.ts';
import { runBatchHandler } from './batch-run.ts';
import { type Claimed, claimParams, decodeBatch } from './claim-decode.ts';
import {
  type ClaimWindow,
  MAX_SUBTRANSACTIONS,
  orderedParkSql,
  PREPARED,
  recordFailures,
} from './claim-sql.ts';
import type { ClaimContext, ClaimCursor, ClaimOutcome, Registration } from './claim-types.ts';
import { isConnectionLost, isIdleInTransactionTimeout } from './connection-errors.ts';
import { ExpandGate } from './expand-gate.ts';
import { HardStop, StopGuard } from './handler-run.ts';
import { type ClaimLink, HandlerScope } from './handler-tx.ts';
import {
  cachedIdleLimit,
  IDLE_LIMIT_SQL,
  idleTimeoutError,
  rememberIdleLimit,
  SessionClock,
  SessionExpired,
} from './session-clock.ts';

/**
 * Charges the handler during which the server closed the claim's session for idling in its
 * transaction (issue 14, item 4). The session's transaction is rolled back and its row locks are
 * gone, so a new short statement records the attempt; the rest of the batch is pending again,
 * uncharged (a lost connection in general costs no attempt: docs/guarantees.md).
 */
async function chargeExpired(
  reg: Registration,
  ctx: ClaimContext,
  culprit: Claimed,
  limitMs: number,
  error: unknown,
  outcome: ClaimOutcome,
): Promise<ClaimOutcome | undefined> {
  const { id, attempt } = culprit.meta;
  const idleMs = limitMs > 0 ? limitMs : error instanceof SessionExpired ? error.idleMs : 0;
  const recorded = idleTimeoutError(idleMs, error instanceof SessionExpired ? undefined : error);
  const dead = attempt >= reg.maxAttempts;
  const retry = dead ? { delayMs: 0 } : retryDelay(reg.backoff, attempt, reg.channel.name);
  try {
    await recordFailures(
      ctx.sql,
      ctx.table,
      [{ id, error: withProblem(recorded, retry.problem), delayMs: retry.delayMs, dead }],
      orderModeOf(reg.channel),
    );
  } catch {
    return undefined;
  }
  return {
    claimed: outcome.claimed,
    processed: [],
    failed: [
      {
        id,
        attempt,
        error: recorded,
        dead,
        retryAt: dead ? null : new Date(Date.now() + retry.delayMs),
      },
    ],
    released: outcome.claimed - 1,
    subtransactions: outcome.subtransactions,
  };
}

function hardStopped(): never {
  throw new HardStop();
}

/**
 * Starts a claim transaction, pipelined (its failure shows in the next statement). The claim picks
 * its own isolation level: under a database or role default of REPEATABLE READ or SERIALIZABLE,
 * FOR UPDATE SKIP LOCKED fails with serialization errors on rows other listeners just handled, and
 * the claim's correctness rests on READ COMMITTED row locking.
 */
export function beginClaim(tsql: postgres.ReservedSql): void {
  tsql
    .unsafe('BEGIN ISOLATION LEVEL READ COMMITTED')
    .execute()
    .catch(() => {});
}

/**
 * Pipelines, ahead of a claim on `tsql`, the expansion of the channel's oldest packed row (storage
 * version 5) in a short READ COMMITTED transaction of its own, so the claim's snapshot sees its events
 * and the other listeners see them as soon as it commits, not only after this claim's handlers ran.
 * Only unordered trigger channels have packed rows. Its failure (a database error) costs nothing: the
 * packed row stays, and the next claim tries again; it rolls back whole, so no event is lost or doubled.
 */
export function expandBeforeClaim(tsql: postgres.ReservedSql, reg: Registration, ctx: ClaimContext): void {
  if (!ctx.expand || reg.channel.kind !== 'trigger' || orderModeOf(reg.channel) !== null) return;
  let gate = gates.get(reg);
  if (gate === undefined) {
    gate = new ExpandGate();
    gates.set(reg, gate);
  }
  const now = performance.now();
  if (!ctx.expandEveryClaim && !gate.due(now)) return;
  const ignore = () => {};
  tsql.unsafe('BEGIN ISOLATION LEVEL READ COMMITTED').execute().catch(ignore);
  tsql
    .unsafe(
      `SELECT ${ctx.expand}($1, $2::text::jsonb) AS n`,
      [reg.channel.name, ctx.filter] as any[],
      PREPARED,
    )
    .execute()
    .then(
      (rows) => gate.record(now, Number(rows[0]?.n ?? 0)),
      () => gate.record(now, null),
    );
  tsql.unsafe('COMMIT').execute().catch(ignore);
}

/** Expansion gates of the registrations of every listener of this process (expand-gate.ts). */
const gates = new WeakMap<Registration, ExpandGate>();

const RESET_CONTEXT = `SELECT set_config('${CONTEXT_SETTING}', '', true)`;

/** Options of one claim. */
export interface ClaimOptions {
  /** Decode row images one at a time, so one undecodable image cannot fail the batch. */
  safe?: boolean;
  /** Receives the ids of the claimed notifications as soon as they are locked. */
  claimedIds?: string[];
  /** Called once the batch is locked, before handlers run: how many, and the last row's cursor. */
  onClaimed?: (count: number, last: ClaimCursor | null) => void;
}

/**
 * One claim transaction: lock up to `window.limit` pending notifications of the channel, run the
 * handler for each inside a (lazily created) savepoint, delete the handled ones and record the
 * failures, commit. Handler writes through `tx` therefore commit exactly once, together with the
 * deletion. Rejects (rolling everything back) only when the transaction itself fails or the listener
 * hard-stops.
 */
export async function claimBatch(
  reg: Registration,
  ctx: ClaimContext,
  window: ClaimWindow,
  options: ClaimOptions = {},
): Promise<ClaimOutcome> {
  const outcome: ClaimOutcome = { claimed: 0, processed: [], failed: [], released: 0, subtransactions: 0 };
  // A reserved connection with explicit BEGIN/COMMIT rather than sql.begin(): postgres.js fails a
  // whole begin() scope on any failed query, even one the caller caught, and a handler's failed
  // query must only roll back to its own savepoint.
  const tsql = await ctx.sql.reserve();
  // Every statement after the claim's SELECT goes through the session clock (session-clock.ts).
  let csql = tsql;
  let clock: SessionClock | undefined;
  /** The notification whose handler runs (or ran last): the one charged if the session expires. */
  let culprit: Claimed | undefined;
  let inTransaction = false;
  let current: HandlerScope | undefined;
  let released = false;
  const link: ClaimLink = {};
  const guard = new StopGuard(ctx.hardStop);
  const mode = orderModeOf(reg.channel);
  try {
    if (mode !== null) {
      // Ordered channel: park the blocked rows of the window first, in their own short transaction
      // (runtime/ordered-sql.ts); pipelined with the claim. Its failure costs only speed.
      tsql
        .unsafe(
          orderedParkSql(ctx.table, ctx.filter !== null, window, mode),
          claimParams(ctx, reg.channel.name, window) as any[],
          PREPARED,
        )
        .execute()
        .catch(() => {});
    }
    expandBeforeClaim(tsql, reg, ctx);
    beginClaim(tsql);
    inTransaction = true;
    if (reg.telemetry?.tracingNow) guard.claimStartedAt = performance.now();
    const cachedLimit = cachedIdleLimit(ctx.sql);
    const limitQuery = cachedLimit === undefined ? tsql.unsafe(IDLE_LIMIT_SQL).execute() : undefined;
    limitQuery?.catch(() => {});
    const batch = await decodeBatch(tsql, reg, ctx, window, options.safe === true);
    const limitMs = cachedLimit ?? Number((await limitQuery!)[0]?.ms ?? 0);
    rememberIdleLimit(ctx.sql, limitMs);
    clock = new SessionClock(limitMs);
    csql = clock.wrap(tsql);
    outcome.claimed = batch.length;
    options.claimedIds?.push(...batch.map((b) => b.meta.id));
    const last = batch.at(-1);
    options.onClaimed?.(batch.length, last ? { runAtUs: last.cursor, id: last.meta.id } : null);
    const done: string[] = [];
    const failures: { id: string; error: unknown; delayMs: number; dead: boolean }[] = [];
    if (reg.batch) {
      culprit = batch.find((item) => item.body !== undefined);
      current = new HandlerScope(csql, ctx.parts, link);
      clock.assertAlive();
      await runBatchHandler(reg, batch, current, guard, outcome, done, failures);
      outcome.subtransactions += current.subtransactions;
    }
    for (const item of reg.batch ? [] : batch) {
      const { id, attempt } = item.meta;
      if (outcome.subtransactions >= MAX_SUBTRANSACTIONS) {
        outcome.released++;
        continue;
      }
      if (item.body === undefined) {
        failures.push({ id, error: item.poison, delayMs: 0, dead: true });
        outcome.failed.push({ id, attempt, error: item.poison, retryAt: null, dead: true });
        continue;
      }
      // Nothing is sent on a session the server has closed for idling (a previous handler was slow);
      // a batch of handlers that are each fast but together idle long keeps the session alive.
      if (reg.rate) await reg.rate.take(ctx.hardStop).catch(hardStopped);
      clock.assertAlive();
      if (limitMs > 0 && clock.idleMs() >= limitMs / 2) await csql.unsafe('SELECT 1');
      culprit = item;
      const scope = new HandlerScope(csql, ctx.parts, link);
      current = scope;
      const started = performance.now();
      try {
        if (ctx.parts.driver === 'node-postgres') await scope.prepare();
        await guard.run(reg, item, scope);
        scope.commit();
        // withContext() in the handler set a transaction-local setting that outlives its released
        // savepoint: clear it, pipelined, so it does not reach the next notifications of the batch.
        if (scope.subtransactions > 0) {
          csql
            .unsafe(RESET_CONTEXT, [], PREPARED)
            .execute()
            .catch(() => {});
        }
        done.push(id);
        outcome.processed.push({ id, attempt, durationMs: performance.now() - started });
      } catch (error) {
        if (error instanceof HardStop || error instanceof SessionExpired) throw error;
        if (isConnectionLost(error)) link.lost ??= error;
        await scope.rollback();
        const dead = attempt >= reg.maxAttempts;
        const retry = dead ? { delayMs: 0 } : retryDelay(reg.backoff, attempt, reg.channel.name);
        const delayMs = retry.delayMs;
        failures.push({ id, error: withProblem(error, retry.problem), delayMs, dead });
        outcome.failed.push({
          id,
          attempt,
          error,
          retryAt: dead ? null : new Date(Date.now() + delayMs),
          dead,
        });
      } finally {
        outcome.subtransactions += scope.subtransactions;
      }
    }
    clock.assertAlive();
    await recordFailures(csql, ctx.table, failures, mode);
    // Ordered channel: the next event of each handled key moves to the front of the queue.
    if (mode !== null && done.length) {
      csql
        .unsafe(PULL_FORWARD_SETTINGS, [], PREPARED)
        .execute()
        .catch(() => {});
      csql
        .unsafe(pullForwardSql(ctx.table), [arrayLiteral(done)], PREPARED)
        .execute()
        .catch(() => {});
    }
    // DELETE and COMMIT go out together (one round trip); if the DELETE fails, COMMIT answers ROLLBACK.
    const deleted = done.length
      ? csql
          .unsafe(`DELETE FROM ${ctx.table} WHERE "id" = ANY($1::bigint[])`, [arrayLiteral(done)], PREPARED)
          .execute()
      : undefined;
    deleted?.catch(() => {});
    const result = await csql.unsafe('COMMIT');
    inTransaction = false;
    await deleted;
    // COMMIT of a transaction that is in an aborted state answers ROLLBACK instead of failing.
    if (result.command !== 'COMMIT') {
      throw new PgPubSubError(
        'ABORTED',
        'The claim transaction was aborted by a failed statement and rolled back.',
      );
    }
  } catch (error) {
    // An interrupted handler's queries were cancelled; let them settle, roll back, then give the
    // connection back. Only then: a connection is never returned to the pool mid-transaction.
    if (isConnectionLost(error)) link.lost ??= error;
    const expired = error instanceof SessionExpired || isIdleInTransactionTimeout(link.lost ?? error);
    // The server closes an expired session: send nothing more on it (not even ROLLBACK).
    if (expired) link.lost ??= error;
    const cleanup = (async () => {
      await current?.settle();
      // A lost connection's transaction is already rolled back by the server, and postgres.js takes
      // the connection back itself when it closes; a ROLLBACK queued on it might never be answered.
      // A connection that does not answer ROLLBACK is never handed back to the pool mid-transaction.
      // A pool that does not take cut connections back by itself (node-postgres) is told to drop it.
      const discard = () => (tsql as { discard?: () => void }).discard?.();
      if (link.lost) return discard();
      if (inTransaction) {
        const ok = await within(tsql.unsafe('ROLLBACK'), 10_000, () => new Error('ROLLBACK timed out')).then(
          () => true,
          (rollbackError) =>
            !isConnectionLost(rollbackError) && rollbackError.message !== 'ROLLBACK timed out',
        );
        if (!ok) return discard();
      }
      tsql.release();
    })();
    released = true;
    if (error instanceof HardStop || ctx.hardStop.aborted) {
      // Shutting down: do not wait for a connection that may be half-open (no answer until TCP
      // gives up); the cleanup finishes, or the client's end() closes it.
      await waitAtMost(cleanup, 1000);
      throw new PgPubSubError('ABORTED', 'Claim transaction rolled back: the listener stopped.', {
        cause: error,
      });
    }
    await cleanup;
    if (expired && culprit) {
      const charged = await chargeExpired(reg, ctx, culprit, clock?.limit ?? 0, error, outcome);
      if (charged) return charged;
    }
    throw error;
  } finally {
    guard.dispose();
    if (!released) tsql.release();
  }
  return outcome;
}
