import { PgPubSubError } from '../errors.ts';
import { arrayLiteral } from '../identifiers.ts';
import { within } from '../timeouts.ts';
import { retryDelay, withProblem } from './backoff.ts';
import { beginClaim, expandBeforeClaim } from './claim.ts';
import { type Claimed, decodeBatch } from './claim-decode.ts';
import { describeError, PREPARED, recordFailures } from './claim-sql.ts';
import type { ClaimContext, ClaimOutcome, Registration } from './claim-types.ts';
import { isConnectionLost } from './connection-errors.ts';
import { HandlerEvent, HardStop, StopGuard } from './handler-run.ts';

/**
 * Long handlers (`listener.on(channel, handler, { lease })`). The claim is a short transaction that
 * leases its rows: `run_at = now() + lease` (other claims skip rows that are not due) and
 * `attempts + 1`. The pair (id, attempts) is the fencing token: the heartbeat extends the lease and
 * completion deletes the row only while the pair still matches, so a listener whose lease ran out
 * and was taken over cannot delete or fail the new owner's attempt. The handler runs outside any
 * transaction with the user's `db`.
 */

/** What a lease claim returns: notifications it leased, and the outcome of those it dead-lettered. */
export interface LeaseClaim {
  outcome: ClaimOutcome;
  leased: Claimed[];
}

/** Claims up to `limit` notifications of a lease channel and commits their leases. */
export async function claimLeased(
  reg: Registration,
  ctx: ClaimContext,
  limit: number,
  options: { safe?: boolean; claimedIds?: string[] } = {},
): Promise<LeaseClaim> {
  const leaseMs = reg.leaseMs!;
  const outcome: ClaimOutcome = { claimed: 0, processed: [], failed: [], released: 0, subtransactions: 0 };
  const leased: Claimed[] = [];
  const tsql = await ctx.sql.reserve();
  let inTransaction = false;
  let lost = false;
  try {
    expandBeforeClaim(tsql, reg, ctx);
    beginClaim(tsql);
    inTransaction = true;
    const batch = await decodeBatch(tsql, reg, ctx, { limit, after: null }, options.safe === true);
    outcome.claimed = batch.length;
    options.claimedIds?.push(...batch.map((b) => b.meta.id));
    const poison: { id: string; error: unknown; delayMs: number; dead: boolean }[] = [];
    const expired: string[] = [];
    for (const item of batch) {
      const { id, attempt } = item.meta;
      if (item.body === undefined) {
        poison.push({ id, error: item.poison, delayMs: 0, dead: true });
        outcome.failed.push({ id, attempt, error: item.poison, retryAt: null, dead: true });
      } else if (attempt > reg.maxAttempts) {
        // The last attempt's lease ran out (its process died or stalled): no attempt is left.
        expired.push(id);
        outcome.failed.push({
          id,
          attempt: attempt - 1,
          error: expiredError(reg),
          retryAt: null,
          dead: true,
        });
      } else {
        leased.push(item);
      }
    }
    await recordFailures(tsql, ctx.table, poison);
    if (expired.length > 0) {
      await tsql.unsafe(
        `UPDATE ${ctx.table} SET "status" = 'failed', "failed_at" = clock_timestamp(), "last_error" = $2
WHERE "id" = ANY($1::bigint[])`,
        [arrayLiteral(expired), describeError(expiredError(reg))],
      );
    }
    if (leased.length > 0) {
      await tsql.unsafe(
        `UPDATE ${ctx.table} SET "run_at" = clock_timestamp() + $2::float8 * interval '1 millisecond', "attempts" = "attempts" + 1
WHERE "id" = ANY($1::bigint[])`,
        [arrayLiteral(leased.map((item) => item.meta.id)), leaseMs],
        PREPARED,
      );
    }
    const result = await tsql.unsafe('COMMIT');
    inTransaction = false;
    if (result.command !== 'COMMIT') {
      throw new PgPubSubError(
        'ABORTED',
        'The lease claim was aborted by a failed statement and rolled back.',
      );
    }
  } catch (error) {
    lost = isConnectionLost(error);
    if (inTransaction && !lost) {
      await within(tsql.unsafe('ROLLBACK'), 10_000, () => new Error('ROLLBACK timed out')).catch(() => {
        lost = true;
      });
    }
    throw error;
  } finally {
    if (!lost) tsql.release();
  }
  return { outcome, leased };
}

function expiredError(reg: Registration): PgPubSubError {
  return new PgPubSubError(
    'LEASE_EXPIRED',
    `The lease of the last attempt (${reg.maxAttempts} of ${reg.maxAttempts}) on "${reg.channel.name}" ran out: the process running the handler died or stalled past its lease. Raise \`lease\` if the handler needs longer, or \`maxAttempts\`, then retry the dead letter.`,
  );
}

/**
 * Runs one leased notification's handler outside any transaction, renewing the lease every third of
 * it, then completes it in a short statement of its own: DELETE on success, or a failed attempt
 * (retry with backoff, or dead letter). Resolves with the outcome, or with `null` when the listener
 * stopped first (the lease then simply runs out and another listener takes the notification over).
 */
export async function runLeased(
  reg: Registration,
  ctx: ClaimContext,
  item: Claimed,
  onError: (error: unknown, during: string) => void,
): Promise<ClaimOutcome | null> {
  const leaseMs = reg.leaseMs!;
  const { id, attempt } = item.meta;
  const token = [id, attempt] as const;
  const guard = new StopGuard(ctx.hardStop);
  const event = new HandlerEvent(item.meta, {
    ...item.body,
    idempotencyKey: `${reg.channel.name}:${id}`,
  });
  let finished = false;
  const beat = async () => {
    try {
      const rows = await ctx.sql.unsafe(
        `UPDATE ${ctx.table} SET "run_at" = clock_timestamp() + $3::float8 * interval '1 millisecond'
WHERE "id" = $1::bigint AND "attempts" = $2::int AND "status" = 'pending' RETURNING 1`,
        [...token, leaseMs],
        PREPARED,
      );
      if (rows.length === 0 && !finished) {
        guard.interrupt(lostError(reg, id));
      }
    } catch (error) {
      onError(error, `renewing the lease of notification ${id} on "${reg.channel.name}"`);
    }
  };
  const heartbeat = setInterval(() => void beat(), Math.max(10, Math.floor(leaseMs / 3)));
  heartbeat.unref?.();
  const base: ClaimOutcome = { claimed: 1, processed: [], failed: [], released: 0, subtransactions: 0 };
  const started = performance.now();
  try {
    if (reg.rate) await reg.rate.take(ctx.hardStop);
    await guard.invoke(reg, [event], undefined, () => reg.handler(event, ctx.db));
  } catch (error) {
    finished = true;
    clearInterval(heartbeat);
    guard.dispose();
    if (error instanceof HardStop || ctx.hardStop.aborted) return null;
    const dead = attempt >= reg.maxAttempts;
    const retry = dead ? { delayMs: 0 } : retryDelay(reg.backoff, attempt, reg.channel.name);
    const rows = await ctx.sql.unsafe(
      `UPDATE ${ctx.table} SET "last_error" = $3,
  "status" = CASE WHEN $4::boolean THEN 'failed' ELSE 'pending' END,
  "failed_at" = CASE WHEN $4::boolean THEN clock_timestamp() END,
  "run_at" = CASE WHEN $4::boolean THEN "run_at" ELSE clock_timestamp() + $5::float8 * interval '1 millisecond' END
WHERE "id" = $1::bigint AND "attempts" = $2::int AND "status" = 'pending' RETURNING 1`,
      [...token, describeError(withProblem(error, retry.problem)), dead, retry.delayMs],
      PREPARED,
    );
    if (rows.length === 0) {
      onError(lostError(reg, id), `recording a failed attempt of notification ${id}`);
      return base;
    }
    base.failed.push({
      id,
      attempt,
      error,
      dead,
      retryAt: dead ? null : new Date(Date.now() + retry.delayMs),
    });
    return base;
  }
  finished = true;
  clearInterval(heartbeat);
  guard.dispose();
  const durationMs = performance.now() - started;
  const rows = await ctx.sql.unsafe(
    `DELETE FROM ${ctx.table} WHERE "id" = $1::bigint AND "attempts" = $2::int AND "status" = 'pending' RETURNING 1`,
    [...token],
    PREPARED,
  );
  if (rows.length === 0) {
    onError(lostError(reg, id), `completing notification ${id}`);
    return base;
  }
  base.processed.push({ id, attempt, durationMs });
  return base;
}

function lostError(reg: Registration, id: string): PgPubSubError {
  return new PgPubSubError(
    'LEASE_LOST',
    `The lease of notification ${id} on "${reg.channel.name}" ran out before the handler finished, and another listener took it over (it runs again there: at-least-once). Raise \`lease\` above the handler's longest run, or check for a stalled event loop.`,
  );
}
