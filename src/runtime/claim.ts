import type postgres from 'postgres';
import type { AnyChannel, TriggerChannel, TriggerOp } from '../channel.ts';
import { errorChain, PgPubSubError } from '../errors.ts';
import type { EventMeta } from '../events.ts';
import { arrayLiteral } from '../identifiers.ts';
import { formatIssues, type StandardSchemaV1 } from '../standard-schema.ts';
import { pendingAndDue } from '../storage/sql-names.ts';
import { waitAtMost, within } from '../timeouts.ts';
import { isConnectionLost } from './connection-errors.ts';
import { expandImageSql, mapRow, populateSql, type RowDecoder } from './decode.ts';
import { type ClaimLink, type DrizzleParts, HandlerScope } from './handler-tx.ts';

/** One `.on(channel, handler)` registration, resolved for claiming. */
export interface Registration {
  channel: AnyChannel;
  handler: (event: any, tx: any) => unknown;
  decoder: RowDecoder | undefined;
  maxAttempts: number;
  backoff: (failedAttempt: number) => number;
  timeoutMs: number | undefined;
}

/** A position in claim order: a row's `run_at` (epoch microseconds) and id, both decimal strings. */
export interface ClaimCursor {
  runAtUs: string;
  id: string;
}

/** What one claim transaction did. */
export interface ClaimOutcome {
  claimed: number;
  processed: { id: string; attempt: number; durationMs: number }[];
  failed: { id: string; attempt: number; error: unknown; retryAt: Date | null; dead: boolean }[];
  /** Claimed but left pending, untouched, because the transaction reached its subtransaction budget. */
  released: number;
  /** Savepoints the handlers opened (each may hold a subtransaction id until commit). */
  subtransactions: number;
}

/**
 * Savepoints one claim transaction may open before it commits and leaves the rest of its batch for
 * the next claim. PostgreSQL caches 64 subtransaction ids per backend; past that every snapshot in
 * the cluster gets slower (suboverflow), so a batch of writing handlers stays below it.
 */
export const MAX_SUBTRANSACTIONS = 60;

const META = `c."id"::text, c."op", c."context", c."attempts", (extract(epoch FROM c."created_at") * 1000)::float8, (extract(epoch FROM c."run_at") * 1000000)::bigint::text`;
const META_COUNT = 6;
const MAX_ERROR_CHARS = 4000;
/** Hot statements are prepared: one round trip, no re-planning (clients with `prepare: false` keep theirs). */
const PREPARED = { prepare: true } as const;

/** Which rows a claim reads: a batch size, and optionally only rows after a cursor. */
export interface ClaimWindow {
  limit: number;
  after?: ClaimCursor | null | undefined;
}

function lockedSelect(table: string, filter: boolean, columns: string, window: ClaimWindow): string {
  if (!Number.isSafeInteger(window.limit) || window.limit < 1)
    throw new Error(`bad claim limit ${window.limit}`);
  const cursorParam = filter ? 3 : 2;
  // Reads the claim index in (run_at, id) order for one channel and skips rows other listeners hold,
  // so a claim costs O(batch) whatever the backlog and never waits on another listener. A claim
  // started while others of this process are in flight begins after their rows (the cursor) instead
  // of walking past them. The limit is a literal so that a generic plan knows it.
  return `SELECT ${columns} FROM ${table}
  WHERE "channel" = $1 AND ${pendingAndDue()}${filter ? ` AND "context" @> $2::jsonb` : ''}${
    window.after
      ? ` AND ("run_at", "id") > (timestamptz 'epoch' + $${cursorParam}::bigint * interval '1 microsecond', $${cursorParam + 1}::bigint)`
      : ''
  }
  ORDER BY "run_at", "id" LIMIT ${window.limit} FOR UPDATE SKIP LOCKED`;
}

/** SQL that claims and, for trigger channels, decodes a batch in one round trip. */
export function claimSql(reg: Registration, table: string, filter: boolean, window: ClaimWindow): string {
  const locked = lockedSelect(
    table,
    filter,
    `"id", "op", "old", "new", "payload", "context", "attempts", "created_at", "run_at"`,
    window,
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
export function rawClaimSql(table: string, filter: boolean, window: ClaimWindow): string {
  const locked = lockedSelect(
    table,
    filter,
    `"id", "op", "old", "new", "context", "attempts", "created_at", "run_at"`,
    window,
  );
  return `WITH c AS (${locked}) SELECT ${META}, c."old"::text, c."new"::text FROM c ORDER BY c."run_at", c."id"`;
}

function decodeOneSql(d: RowDecoder): string {
  return `SELECT $1::jsonb IS NOT NULL, ${expandImageSql(d, 'o')}, $2::jsonb IS NOT NULL, ${expandImageSql(d, 'n')}
FROM (SELECT 1) x ${populateSql(d, '$1::jsonb', 'o')} ${populateSql(d, '$2::jsonb', 'n')}`;
}

/** Text kept in `last_error`: the message, the messages of its causes, and the stack, bounded. */
export function describeError(error: unknown): string {
  const parts = [...errorChain(error, 4)].map((e, depth) => {
    const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return depth === 0 ? text : `caused by ${text}`;
  });
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
    PREPARED,
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
  /** `run_at` in epoch microseconds (text), for the claim cursor. */
  cursor: string;
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

function payloadBody(result: StandardSchemaV1.Result<unknown>): Record<string, unknown> {
  if (result.issues) {
    throw new PgPubSubError(
      'INVALID_PAYLOAD',
      `Stored payload does not match the channel's schema: ${formatIssues(result.issues)}`,
    );
  }
  return { payload: result.value };
}

/** Validates a stored payload; synchronous for synchronous schemas (valibot, zod), so no microtask per row. */
function validatePayload(
  reg: Registration,
  payload: unknown,
): Record<string, unknown> | Promise<Record<string, unknown>> {
  if (reg.channel.kind !== 'custom') throw new Error('unreachable');
  const result = reg.channel.schema['~standard'].validate(payload);
  return result instanceof Promise ? result.then(payloadBody) : payloadBody(result);
}

function claimParams(ctx: ClaimContext, name: string, window: ClaimWindow): unknown[] {
  const params: unknown[] = ctx.filter === null ? [name] : [name, ctx.filter];
  if (window.after) params.push(window.after.runAtUs, window.after.id);
  return params;
}

async function decodeBatch(
  tsql: postgres.ReservedSql,
  reg: Registration,
  ctx: ClaimContext,
  window: ClaimWindow,
  safe: boolean,
): Promise<Claimed[]> {
  const name = reg.channel.name;
  const params = claimParams(ctx, name, window) as any[];
  if (!safe || !reg.decoder) {
    const rows = (await tsql
      .unsafe(claimSql(reg, ctx.table, ctx.filter !== null, window), params, PREPARED)
      .values()) as unknown[][];
    const out: Claimed[] = [];
    let pending: Promise<unknown>[] | undefined;
    for (const row of rows) {
      const item: Claimed = { meta: metaOf(row, name), body: undefined, cursor: row[5] as string };
      out.push(item);
      try {
        const body = reg.decoder
          ? triggerBody(reg, row[1], row, META_COUNT)
          : validatePayload(reg, row[META_COUNT]);
        if (body instanceof Promise) {
          pending ??= [];
          pending.push(
            body.then(
              (b) => {
                item.body = b;
              },
              (poison) => {
                item.poison = poison;
              },
            ),
          );
        } else {
          item.body = body;
        }
      } catch (poison) {
        item.poison = poison;
      }
    }
    if (pending) await Promise.all(pending);
    return out;
  }
  const decoder = reg.decoder;
  const rows = (await tsql
    .unsafe(rawClaimSql(ctx.table, ctx.filter !== null, window), params, PREPARED)
    .values()) as unknown[][];
  const out: Claimed[] = [];
  for (const row of rows) {
    const meta = metaOf(row, name);
    const cursor = row[5] as string;
    await tsql.unsafe('SAVEPOINT pgpubsub_decode');
    let values: unknown[];
    try {
      const decoded = await tsql.unsafe(decodeOneSql(decoder), [row[6], row[7]] as any[]).values();
      values = decoded[0] as unknown[];
      await tsql.unsafe('RELEASE SAVEPOINT pgpubsub_decode');
    } catch (error) {
      await tsql.unsafe('ROLLBACK TO SAVEPOINT pgpubsub_decode');
      const reason = new PgPubSubError(
        'DECODE_FAILED',
        `The row image cannot be decoded into ${decoder.rowType}: ${(error as Error).message}`,
        { cause: error },
      );
      out.push({ meta, body: undefined, poison: reason, cursor });
      continue;
    }
    try {
      out.push({ meta, body: triggerBody(reg, row[1], values, 0), cursor });
    } catch (poison) {
      out.push({ meta, body: undefined, poison, cursor });
    }
  }
  return out;
}

class HardStop extends Error {}

const CONTROLLER = Symbol('controller');

/** The event a handler receives; its `signal` is created on first use (most handlers never read it). */
class HandlerEvent {
  [key: string]: unknown;
  #controller: AbortController | undefined;

  constructor(meta: Omit<EventMeta, 'signal'>, body: Record<string, unknown>) {
    Object.assign(this, meta, body);
  }

  get signal(): AbortSignal {
    return this[CONTROLLER]().signal;
  }

  [CONTROLLER](): AbortController {
    this.#controller ??= new AbortController();
    return this.#controller;
  }
}

/**
 * Lets the listener's hard stop interrupt whichever handler of a claim is running: one abort
 * listener and one promise per claim rather than per notification.
 */
class StopGuard {
  /** Interrupts the running handler: aborts its signal and cancels its queries. */
  private current: ((reason: Error) => void) | undefined;
  private readonly stopped: Promise<never>;
  private readonly onStop: () => void;

  constructor(private readonly hardStop: AbortSignal) {
    let reject!: (error: unknown) => void;
    this.stopped = new Promise<never>((_, r) => {
      reject = r;
    });
    this.stopped.catch(() => {});
    this.onStop = () => {
      this.current?.(new PgPubSubError('ABORTED', 'The listener stopped before this handler finished.'));
      reject(new HardStop());
    };
    hardStop.addEventListener('abort', this.onStop, { once: true });
  }

  /** Runs one handler; it rejects when the handler times out or the listener gives up on it. */
  async run(reg: Registration, claimed: Claimed, scope: HandlerScope): Promise<void> {
    if (this.hardStop.aborted) throw new HardStop();
    const event = new HandlerEvent(claimed.meta, claimed.body!);
    let timer: NodeJS.Timeout | undefined;
    let timedOut: Promise<never> | undefined;
    this.current = (reason) => {
      event[CONTROLLER]().abort(reason);
      scope.abort(reason.message);
    };
    const ms = reg.timeoutMs;
    if (ms !== undefined) {
      timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new PgPubSubError(
            'HANDLER_TIMEOUT',
            `Handler of "${reg.channel.name}" ran past its ${ms} ms timeout.`,
          );
          this.current?.(error);
          reject(error);
        }, ms);
      });
    }
    try {
      // The claim does not wait for a handler that ignores its signal: it races the stop (and timeout).
      const result = reg.handler(event, scope.tx) as PromiseLike<unknown> | undefined;
      if (typeof result?.then === 'function') {
        const races = [result, this.stopped];
        if (timedOut) races.push(timedOut);
        await Promise.race(races);
      }
      // A handler that returns after the listener gave up on it must not commit.
      if (this.hardStop.aborted) throw new HardStop();
    } catch (error) {
      if (this.hardStop.aborted) throw new HardStop();
      throw error;
    } finally {
      this.current = undefined;
      clearTimeout(timer);
    }
  }

  dispose(): void {
    this.hardStop.removeEventListener('abort', this.onStop);
  }
}

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
  let inTransaction = false;
  let current: HandlerScope | undefined;
  let released = false;
  const link: ClaimLink = {};
  const guard = new StopGuard(ctx.hardStop);
  try {
    tsql
      .unsafe('BEGIN')
      .execute()
      .catch(() => {});
    inTransaction = true;
    const batch = await decodeBatch(tsql, reg, ctx, window, options.safe === true);
    outcome.claimed = batch.length;
    options.claimedIds?.push(...batch.map((b) => b.meta.id));
    const last = batch.at(-1);
    options.onClaimed?.(batch.length, last ? { runAtUs: last.cursor, id: last.meta.id } : null);
    const done: string[] = [];
    const failures: { id: string; error: unknown; delayMs: number; dead: boolean }[] = [];
    for (const item of batch) {
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
      const scope = new HandlerScope(tsql, ctx.parts, link);
      current = scope;
      const started = performance.now();
      try {
        await guard.run(reg, item, scope);
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
      } finally {
        outcome.subtransactions += scope.subtransactions;
      }
    }
    await recordFailures(tsql, ctx.table, failures);
    // DELETE and COMMIT go out together (one round trip); if the DELETE fails, COMMIT answers ROLLBACK.
    const deleted = done.length
      ? tsql
          .unsafe(`DELETE FROM ${ctx.table} WHERE "id" = ANY($1::bigint[])`, [arrayLiteral(done)], PREPARED)
          .execute()
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
      await waitAtMost(cleanup, 1000);
      throw new PgPubSubError('ABORTED', 'Claim transaction rolled back: the listener stopped.', {
        cause: error,
      });
    }
    await cleanup;
    throw error;
  } finally {
    guard.dispose();
    if (!released) tsql.release();
  }
  return outcome;
}
