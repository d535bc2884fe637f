import type postgres from 'postgres';
import type { AnyChannel, TriggerChannel, TriggerOp } from './channel.ts';
import { isConnectionLost, within } from './connection-errors.ts';
import { expandImageSql, mapRow, populateSql, type RowDecoder } from './decode.ts';
import { PgPubSubError } from './errors.ts';
import type { EventMeta } from './events.ts';
import { type ClaimLink, type DrizzleParts, HandlerScope } from './handler-tx.ts';
import { arrayLiteral, quoteIdent } from './identifiers.ts';

/** One `.on(channel, handler)` registration, resolved for claiming. */
export interface Registration {
  channel: AnyChannel;
  handler: (event: any, tx: any) => unknown;
  decoder: RowDecoder | undefined;
  maxAttempts: number;
  backoff: (failedAttempt: number) => number;
  timeoutMs: number | undefined;
}

/** What one claim transaction did. */
export interface ClaimOutcome {
  claimed: number;
  processed: { id: string; attempt: number; durationMs: number }[];
  failed: { id: string; attempt: number; error: unknown; retryAt: Date | null; dead: boolean }[];
}

const META = `c."id"::text, c."op", c."context", c."attempts", (extract(epoch FROM c."created_at") * 1000)::float8`;
const META_COUNT = 5;
const MAX_ERROR_CHARS = 4000;

function lockedSelect(table: string, filter: boolean, columns: string): string {
  // Reads the claim index in (run_at, id) order for one channel and skips rows other listeners hold,
  // so a claim costs O(batch) whatever the backlog and never waits on another listener.
  return `SELECT ${columns} FROM ${table}
  WHERE "channel" = $1 AND "status" = 'pending' AND "run_at" <= now()${filter ? ` AND "context" @> $3::jsonb` : ''}
  ORDER BY "run_at", "id" LIMIT $2 FOR UPDATE SKIP LOCKED`;
}

/** SQL that claims and, for trigger channels, decodes a batch in one round trip. */
export function claimSql(reg: Registration, table: string, filter: boolean): string {
  const locked = lockedSelect(
    table,
    filter,
    `"id", "op", "old", "new", "payload", "context", "attempts", "created_at", "run_at"`,
  );
  if (!reg.decoder) {
    return `WITH c AS (${locked}) SELECT ${META}, c."payload" FROM c ORDER BY c."run_at", c."id"`;
  }
  const d = reg.decoder;
  return `WITH c AS (${locked})
SELECT ${META}, c."old" IS NOT NULL, ${expandImageSql(d, 'o')}, c."new" IS NOT NULL, ${expandImageSql(d, 'n')}
FROM c ${populateSql(d, 'c."old"', 'o')} ${populateSql(d, 'c."new"', 'n')}
ORDER BY c."run_at", c."id"`;
}

/** SQL that claims raw (undecoded) rows: the fallback when a batch holds an image that cannot decode. */
export function rawClaimSql(table: string, filter: boolean): string {
  const locked = lockedSelect(
    table,
    filter,
    `"id", "op", "old", "new", "context", "attempts", "created_at", "run_at"`,
  );
  return `WITH c AS (${locked}) SELECT ${META}, c."old"::text, c."new"::text FROM c ORDER BY c."run_at", c."id"`;
}

function decodeOneSql(d: RowDecoder): string {
  return `SELECT $1::jsonb IS NOT NULL, ${expandImageSql(d, 'o')}, $2::jsonb IS NOT NULL, ${expandImageSql(d, 'n')}
FROM (SELECT 1) x ${populateSql(d, '$1::jsonb', 'o')} ${populateSql(d, '$2::jsonb', 'n')}`;
}

/** Text kept in `last_error`: the message, the messages of its causes, and the stack, bounded. */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    const text = current instanceof Error ? `${current.name}: ${current.message}` : String(current);
    parts.push(depth === 0 ? text : `caused by ${text}`);
    current = current instanceof Error ? current.cause : undefined;
  }
  const stack =
    error instanceof Error && error.stack ? `\n${error.stack.split('\n').slice(1).join('\n')}` : '';
  const text = parts.join('\n') + stack;
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}…` : text;
}

/** Records failed attempts (retry later, or dead letter) in the claim transaction. */
export async function recordFailures(
  sql: postgres.Sql | postgres.ReservedSql,
  table: string,
  failures: { id: string; error: unknown; delayMs: number; dead: boolean }[],
): Promise<void> {
  if (failures.length === 0) return;
  const rows = failures.map((f) => ({
    id: f.id,
    error: describeError(f.error),
    delay_ms: f.delayMs,
    dead: f.dead,
  }));
  await sql.unsafe(
    `UPDATE ${table} AS n SET "attempts" = n."attempts" + 1, "last_error" = f.error,
  "status" = CASE WHEN f.dead THEN 'failed' ELSE 'pending' END,
  "failed_at" = CASE WHEN f.dead THEN clock_timestamp() END,
  "run_at" = CASE WHEN f.dead THEN n."run_at" ELSE clock_timestamp() + f.delay_ms * interval '1 millisecond' END
FROM jsonb_to_recordset($1::jsonb) AS f(id bigint, error text, delay_ms float8, dead boolean)
WHERE n."id" = f.id`,
    [JSON.stringify(rows)],
  );
}

/** Context shared by every claim of one listener. */
export interface ClaimContext {
  sql: postgres.Sql;
  parts: DrizzleParts;
  table: string;
  filter: string | null;
  /** Aborted when the listener gives up waiting for in-flight handlers at stop(). */
  hardStop: AbortSignal;
}

interface Claimed {
  meta: Omit<EventMeta, 'signal'>;
  /** The event body: payload, or op/old/new; `undefined` with `poison` set when it cannot be built. */
  body: Record<string, unknown> | undefined;
  poison?: unknown;
}

function metaOf(row: unknown[], channel: string): Omit<EventMeta, 'signal'> {
  return {
    id: row[0] as string,
    channel,
    context: (row[2] ?? {}) as Record<string, unknown>,
    attempt: (row[3] as number) + 1,
    createdAt: new Date(row[4] as number),
  };
}

const IMAGES: Record<TriggerOp, [boolean, boolean]> = {
  insert: [false, true],
  update: [true, true],
  delete: [true, false],
};

/**
 * The op/old/new of a trigger event. Rows the channel's trigger did not write (by hand, or for an op
 * the channel no longer handles) are refused: handlers are typed to get only what the trigger sends.
 */
function triggerBody(
  reg: Registration,
  op: unknown,
  values: unknown[],
  offset: number,
): Record<string, unknown> {
  const d = reg.decoder!;
  const ops = (reg.channel as TriggerChannel<any, any>).ops as readonly unknown[];
  if (!ops.includes(op)) {
    throw new PgPubSubError(
      'DECODE_FAILED',
      `The notification's op is ${JSON.stringify(op)}, but channel "${reg.channel.name}" handles ${ops.join(', ')} only.`,
    );
  }
  const hasOld = values[offset] === true;
  const newOffset = offset + 1 + d.columns.length;
  const hasNew = values[newOffset] === true;
  const [needOld, needNew] = IMAGES[op as TriggerOp];
  if (hasOld !== needOld || hasNew !== needNew) {
    throw new PgPubSubError(
      'DECODE_FAILED',
      `An ${op} notification carries ${needOld ? 'an old' : 'no old'} and ${needNew ? 'a new' : 'no new'} row image; this one has ${hasOld ? 'an old' : 'no old'} and ${hasNew ? 'a new' : 'no new'}. It was not written by the channel's trigger.`,
    );
  }
  return {
    op,
    old: hasOld ? mapRow(d, values, offset + 1) : null,
    new: hasNew ? mapRow(d, values, newOffset + 1) : null,
  };
}

async function validatePayload(reg: Registration, payload: unknown): Promise<Record<string, unknown>> {
  if (reg.channel.kind !== 'custom') throw new Error('unreachable');
  const result = await reg.channel.schema['~standard'].validate(payload);
  if (result.issues) {
    const detail = result.issues
      .map((i: { message: string; path?: readonly unknown[] }) => {
        const path = (i.path ?? []).map((p) =>
          typeof p === 'object' && p !== null ? (p as { key: unknown }).key : p,
        );
        return path.length ? `${path.join('.')}: ${i.message}` : i.message;
      })
      .join('; ');
    throw new PgPubSubError(
      'INVALID_PAYLOAD',
      `Stored payload does not match the channel's schema: ${detail}`,
    );
  }
  return { payload: result.value };
}

async function decodeBatch(
  tsql: postgres.ReservedSql,
  reg: Registration,
  ctx: ClaimContext,
  limit: number,
  safe: boolean,
): Promise<Claimed[]> {
  const name = reg.channel.name;
  const params: unknown[] = ctx.filter === null ? [name, limit] : [name, limit, ctx.filter];
  if (!safe || !reg.decoder) {
    const rows = (await tsql
      .unsafe(claimSql(reg, ctx.table, ctx.filter !== null), params as any[])
      .values()) as unknown[][];
    return Promise.all(
      rows.map(async (row) => {
        const meta = metaOf(row, name);
        try {
          const body = reg.decoder
            ? triggerBody(reg, row[1], row, META_COUNT)
            : await validatePayload(reg, row[META_COUNT]);
          return { meta, body };
        } catch (poison) {
          return { meta, body: undefined, poison };
        }
      }),
    );
  }
  const decoder = reg.decoder;
  const rows = (await tsql
    .unsafe(rawClaimSql(ctx.table, ctx.filter !== null), params as any[])
    .values()) as unknown[][];
  const out: Claimed[] = [];
  for (const row of rows) {
    const meta = metaOf(row, name);
    await tsql.unsafe('SAVEPOINT pgpubsub_decode');
    let values: unknown[];
    try {
      const decoded = await tsql.unsafe(decodeOneSql(decoder), [row[5], row[6]] as any[]).values();
      values = decoded[0] as unknown[];
      await tsql.unsafe('RELEASE SAVEPOINT pgpubsub_decode');
    } catch (error) {
      await tsql.unsafe('ROLLBACK TO SAVEPOINT pgpubsub_decode');
      const reason = new PgPubSubError(
        'DECODE_FAILED',
        `The row image cannot be decoded into ${decoder.rowType}: ${(error as Error).message}`,
        { cause: error },
      );
      out.push({ meta, body: undefined, poison: reason });
      continue;
    }
    try {
      out.push({ meta, body: triggerBody(reg, row[1], values, 0) });
    } catch (poison) {
      out.push({ meta, body: undefined, poison });
    }
  }
  return out;
}

class HardStop extends Error {}

async function runHandler(reg: Registration, claimed: Claimed, scope: HandlerScope, hardStop: AbortSignal) {
  if (hardStop.aborted) throw new HardStop();
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onStop = () => {};
  // Settles (rejects) when the handler runs out of time or the listener gives up on it: the claim
  // does not wait for a handler that ignores its signal.
  const interrupted = new Promise<never>((_, reject) => {
    const interrupt = (reason: Error, thrown: Error) => {
      controller.abort(reason);
      scope.abort(reason.message);
      reject(thrown);
    };
    onStop = () =>
      interrupt(
        new PgPubSubError('ABORTED', 'The listener stopped before this handler finished.'),
        new HardStop(),
      );
    hardStop.addEventListener('abort', onStop, { once: true });
    const ms = reg.timeoutMs;
    if (ms !== undefined) {
      timer = setTimeout(() => {
        const error = new PgPubSubError(
          'HANDLER_TIMEOUT',
          `Handler of "${reg.channel.name}" ran past its ${ms} ms timeout.`,
        );
        interrupt(error, error);
      }, ms);
    }
  });
  try {
    const event = { ...claimed.meta, ...claimed.body, signal: controller.signal };
    await Promise.race([Promise.resolve().then(() => reg.handler(event, scope.tx)), interrupted]);
    // A handler that returns after the listener gave up on it must not commit.
    if (hardStop.aborted) throw new HardStop();
  } catch (error) {
    if (hardStop.aborted) throw new HardStop();
    throw error;
  } finally {
    clearTimeout(timer);
    hardStop.removeEventListener('abort', onStop);
  }
}

/**
 * One claim transaction: lock up to `limit` pending notifications of the channel, run the handler for
 * each inside a (lazily created) savepoint, delete the handled ones and record the failures, commit.
 * Handler writes through `tx` therefore commit exactly once, together with the deletion.
 * Rejects (rolling everything back) only when the transaction itself fails or the listener hard-stops.
 */
export async function claimBatch(
  reg: Registration,
  ctx: ClaimContext,
  limit: number,
  options: { safe?: boolean; claimedIds?: string[] } = {},
): Promise<ClaimOutcome> {
  const outcome: ClaimOutcome = { claimed: 0, processed: [], failed: [] };
  // A reserved connection with explicit BEGIN/COMMIT rather than sql.begin(): postgres.js fails a
  // whole begin() scope on any failed query, even one the caller caught, and a handler's failed
  // query must only roll back to its own savepoint.
  const tsql = await ctx.sql.reserve();
  let inTransaction = false;
  let current: HandlerScope | undefined;
  let released = false;
  const link: ClaimLink = {};
  try {
    tsql
      .unsafe('BEGIN')
      .execute()
      .catch(() => {});
    inTransaction = true;
    const batch = await decodeBatch(tsql, reg, ctx, limit, options.safe === true);
    outcome.claimed = batch.length;
    options.claimedIds?.push(...batch.map((b) => b.meta.id));
    const done: string[] = [];
    const failures: { id: string; error: unknown; delayMs: number; dead: boolean }[] = [];
    for (const item of batch) {
      const { id, attempt } = item.meta;
      if (item.body === undefined) {
        failures.push({ id, error: item.poison, delayMs: 0, dead: true });
        outcome.failed.push({ id, attempt, error: item.poison, retryAt: null, dead: true });
        continue;
      }
      const scope = new HandlerScope(tsql, ctx.parts, link);
      current = scope;
      const started = performance.now();
      try {
        await runHandler(reg, item, scope, ctx.hardStop);
        scope.commit();
        done.push(id);
        outcome.processed.push({ id, attempt, durationMs: performance.now() - started });
      } catch (error) {
        if (error instanceof HardStop) throw error;
        if (isConnectionLost(error)) link.lost ??= error;
        await scope.rollback();
        const dead = attempt >= reg.maxAttempts;
        const delayMs = dead ? 0 : reg.backoff(attempt);
        failures.push({ id, error, delayMs, dead });
        outcome.failed.push({
          id,
          attempt,
          error,
          retryAt: dead ? null : new Date(Date.now() + delayMs),
          dead,
        });
      }
    }
    await recordFailures(tsql, ctx.table, failures);
    // DELETE and COMMIT go out together (one round trip); if the DELETE fails, COMMIT answers ROLLBACK.
    const deleted = done.length
      ? tsql.unsafe(`DELETE FROM ${ctx.table} WHERE "id" = ANY($1::bigint[])`, [arrayLiteral(done)]).execute()
      : undefined;
    deleted?.catch(() => {});
    const result = await tsql.unsafe('COMMIT');
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
    const cleanup = (async () => {
      await current?.settle();
      // A lost connection's transaction is already rolled back by the server, and postgres.js takes
      // the connection back itself when it closes; a ROLLBACK queued on it might never be answered.
      // A connection that does not answer ROLLBACK is never handed back to the pool mid-transaction.
      if (link.lost) return;
      if (inTransaction) {
        const ok = await within(tsql.unsafe('ROLLBACK'), 10_000, () => new Error('ROLLBACK timed out')).then(
          () => true,
          (rollbackError) =>
            !isConnectionLost(rollbackError) && rollbackError.message !== 'ROLLBACK timed out',
        );
        if (!ok) return;
      }
      tsql.release();
    })();
    released = true;
    if (error instanceof HardStop || ctx.hardStop.aborted) {
      // Shutting down: do not wait for a connection that may be half-open (no answer until TCP
      // gives up); the cleanup finishes, or the client's end() closes it.
      await Promise.race([cleanup, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
      throw new PgPubSubError('ABORTED', 'Claim transaction rolled back: the listener stopped.', {
        cause: error,
      });
    }
    await cleanup;
    throw error;
  } finally {
    if (!released) tsql.release();
  }
  return outcome;
}

/** Quoted `"schema"."notifications"`. */
export function notificationsRef(schema: string): string {
  return `${quoteIdent(schema)}."notifications"`;
}
