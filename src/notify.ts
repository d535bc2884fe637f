import { sql } from 'drizzle-orm';
import type { CustomChannel } from './channel.ts';
import { isChannel } from './channel.ts';
import { isDrizzleTransaction } from './drizzle-compat.ts';
import { PgPubSubError } from './errors.ts';
import { byteLength, quoteIdent } from './identifiers.ts';
import { formatIssues, type StandardSchemaV1 } from './standard-schema.ts';
import { DEFAULT_SCHEMA } from './storage/notifications.ts';
import { notifyFunctionRef, WAKE_SETTING } from './storage/sql-names.ts';
import { activeTraceContext, type TraceContextFields } from './telemetry/trace-context.ts';

/** Anything Drizzle can run SQL on: a database or a transaction (any pg driver). */
export interface SqlExecutor {
  execute(query: ReturnType<typeof sql>): PromiseLike<unknown>;
}

/** Largest NOTIFY payload PostgreSQL accepts, in bytes. */
export const MAX_BROADCAST_BYTES = 7999;

/**
 * JSON.stringify replacer: PostgreSQL's jsonb refuses NUL characters and unpaired UTF-16 surrogates.
 * The error names the field (`key`) whose key or value holds one.
 */
export function storableString(key: string, value: unknown): unknown {
  for (const text of [key, value]) {
    if (typeof text === 'string' && (text.includes('\0') || !text.isWellFormed())) {
      const field = key === '' ? '' : `Field ${JSON.stringify(key.slice(0, 40))}: `;
      throw new PgPubSubError(
        'INVALID_PAYLOAD',
        `${field}${JSON.stringify(text.slice(0, 40))} contains a NUL character or an unpaired surrogate, which PostgreSQL cannot store as JSON. Remove them.`,
      );
    }
  }
  return value;
}

/** Largest jsonb value PostgreSQL stores, in bytes (its varlena limit, 256 MB - 1). */
export const MAX_JSONB_BYTES = 268_435_455;

/**
 * Validates `payload` with the channel's schema and returns the JSON text to store. The JSON
 * round-trip is what a handler will read back, so that is what must validate: a `Date` or `bigint`
 * that JSON would mangle is reported here, not in the listener.
 */
export async function serializePayload(ch: CustomChannel<any, boolean>, payload: unknown): Promise<string> {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload, storableString);
  } catch (error) {
    if (error instanceof PgPubSubError) {
      throw new PgPubSubError(
        'INVALID_PAYLOAD',
        `Payload for channel "${ch.name}": ${error.message} Nothing was stored.`,
      );
    }
    throw new PgPubSubError(
      'INVALID_PAYLOAD',
      `Payload for channel "${ch.name}" cannot be serialized to JSON (${(error as Error).message}). Send JSON values only (e.g. strings instead of bigint).`,
      { cause: error },
    );
  }
  // PostgreSQL refuses larger values with "total size of jsonb ... exceeds the maximum"; a string
  // this long costs up to 3 bytes per UTF-16 unit, so only long ones are measured.
  if (json !== undefined && json.length * 3 > MAX_JSONB_BYTES) {
    const bytes = byteLength(json);
    if (bytes > MAX_JSONB_BYTES) {
      throw new PgPubSubError(
        'PAYLOAD_TOO_LARGE',
        `Payload for channel "${ch.name}" is ${bytes} bytes as JSON; PostgreSQL stores at most ${MAX_JSONB_BYTES} bytes in a jsonb value (256 MB). Store the data elsewhere (a table, object storage) and send its id. Nothing was stored.`,
      );
    }
  }
  const roundTripped = json === undefined ? undefined : JSON.parse(json);
  const result = await ch.schema['~standard'].validate(roundTripped);
  if (result.issues) {
    const original = await ch.schema['~standard'].validate(payload);
    const hint = original.issues
      ? ''
      : ' The payload is valid but not JSON-safe: it changes when stored as JSON (e.g. Date becomes a string). Use JSON types in the schema, e.g. v.pipe(v.string(), v.isoTimestamp()).';
    throw new PgPubSubError(
      'INVALID_PAYLOAD',
      `Invalid payload for channel "${ch.name}": ${formatIssues(original.issues ?? result.issues)}.${hint} Nothing was stored.`,
    );
  }
  return json as string;
}

/** Options of {@link notify} for one payload. */
export interface NotifyOptions {
  /** The pg schema of the storage (default `pgpubsub`). */
  schema?: string;
  /** Not before this time (delayed job). Exclusive with `delayMs`. */
  runAt?: Date;
  /** Not before this many milliseconds after the transaction started (database clock). */
  delayMs?: number;
  /**
   * Deduplication key: at most one pending notification per channel and key. What a second one
   * does is `onDuplicate`'s choice.
   */
  key?: string;
  /** With `key`: keep the pending one (`skip`, default) or replace its payload, runAt and priority. */
  onDuplicate?: 'skip' | 'replace';
  /** Higher is claimed first within the channel (default 0); see docs/jobs.md for fairness. */
  priority?: number;
  /**
   * Ordered channels: the ordering key of this message, overriding the channel's `key` function.
   * Messages with the same key are handled one at a time, in commit order.
   */
  orderingKey?: string;
}

/** Options of {@link notify} for an array of payloads: as for one, with a key per payload. */
export interface BulkNotifyOptions<TPayload> extends Omit<NotifyOptions, 'key' | 'orderingKey'> {
  /** The dedup key of each payload (`undefined`/`null`: none). */
  key?: (payload: TPayload, index: number) => string | null | undefined;
}

/** What happened to one payload sent on a durable channel. */
export type NotifyOutcome = 'inserted' | 'skipped' | 'replaced';

/** What {@link notify} did with one payload on a durable channel. */
export interface NotifyResult {
  /** The notification that holds the payload (skipped: the pending one that was kept). */
  id: bigint;
  /** `inserted`: a new notification; `skipped`: a pending one had the key; `replaced`: it was overwritten. */
  outcome: NotifyOutcome;
  /** Whether a pending notification with the same key already existed (`skipped` or `replaced`). */
  duplicate: boolean;
}

/** What {@link notify} did with an array of payloads: one result per payload, in order. */
export interface BulkNotifyResult {
  /** `results[i].id`, for convenience. */
  ids: bigint[];
  results: NotifyResult[];
}

/** What {@link notify} did on a broadcast channel: a NOTIFY, nothing stored. */
export interface BroadcastResult {
  id: null;
  outcome: 'sent';
  duplicate: false;
}

function invalidOptions(message: string, cause?: unknown): PgPubSubError {
  return new PgPubSubError(
    'INVALID_OPTIONS',
    `notify(): ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

const KNOWN_OPTIONS = new Set([
  'schema',
  'runAt',
  'delayMs',
  'key',
  'onDuplicate',
  'priority',
  'orderingKey',
]);

/** A misspelt option (`runat`) would silently drop a delay or a dedup key: refuse it. */
function checkKnownOptions(options: object): void {
  const unknown = Object.keys(options).filter((k) => !KNOWN_OPTIONS.has(k));
  if (unknown.length > 0) {
    throw invalidOptions(
      `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; the options are ${[...KNOWN_OPTIONS].join(', ')}. Nothing was stored.`,
    );
  }
}

/** Longest dedup or ordering key, in UTF-8 bytes: keys live in B-tree indexes (at most ~2,700 bytes a row). */
export const MAX_KEY_BYTES = 1024;

/** Longest `delayMs`: 100 years. Further than that, a fixed `runAt` says what is meant. */
const MAX_DELAY_MS = 100 * 365.25 * 86_400_000;

function checkKeyBytes(key: string, what: string): void {
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) {
    throw invalidOptions(
      `${what} is ${bytes} bytes; at most ${MAX_KEY_BYTES} are allowed (keys are indexed). Use a shorter key, e.g. a hash of this one.`,
    );
  }
}

function callKey(
  keyOf: NonNullable<BulkNotifyOptions<unknown>['key']>,
  item: unknown,
  index: number,
): unknown {
  try {
    return keyOf(item, index);
  } catch (error) {
    throw invalidOptions(
      `the key function threw: ${(error as Error)?.message ?? String(error)}. Nothing was stored.`,
      error,
    );
  }
}

/** Validates the job options and turns them into `notify_many`'s options object (keys apart). */
function jobOptions(options: Omit<NotifyOptions, 'key'>, hasKeys: boolean): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  const { runAt, delayMs, priority, onDuplicate } = options;
  if (runAt !== undefined && delayMs !== undefined) {
    throw invalidOptions('give runAt or delayMs, not both.');
  }
  if (runAt !== undefined) {
    if (!(runAt instanceof Date) || Number.isNaN(runAt.getTime())) {
      throw invalidOptions('runAt must be a valid Date.');
    }
    const year = runAt.getUTCFullYear();
    if (year < 1 || year > 9999) {
      throw invalidOptions(`runAt must fall between the years 1 and 9999 (got ${year}).`);
    }
    out.runAt = runAt.toISOString();
  }
  if (delayMs !== undefined) {
    if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
      throw invalidOptions(
        `delayMs must be a number of milliseconds from 0 to ${MAX_DELAY_MS} (100 years) (got ${String(delayMs)}).`,
      );
    }
    out.delayMs = delayMs;
  }
  if (priority !== undefined) {
    if (!Number.isInteger(priority) || priority < -(2 ** 31) || priority > 2 ** 31 - 1) {
      throw invalidOptions(`priority must be a 32-bit integer (got ${String(priority)}).`);
    }
    out.priority = priority;
  }
  if (onDuplicate !== undefined) {
    if (onDuplicate !== 'skip' && onDuplicate !== 'replace') {
      throw invalidOptions(`onDuplicate must be 'skip' or 'replace' (got ${JSON.stringify(onDuplicate)}).`);
    }
    if (!hasKeys) throw invalidOptions('onDuplicate needs a key.');
    out.onDuplicate = onDuplicate;
  }
  return Object.keys(out).length > 0 || hasKeys ? out : null;
}

function checkKey(key: unknown, where: string): string | null {
  if (key === undefined || key === null) return null;
  if (typeof key !== 'string' || key.length === 0) {
    throw invalidOptions(`${where}key must be a non-empty string (got ${JSON.stringify(key)}).`);
  }
  if (key.includes('\u0001') || key.includes('\0') || !key.isWellFormed()) {
    throw invalidOptions(
      `${where}key ${JSON.stringify(key.slice(0, 40))} contains U+0000, U+0001 or an unpaired surrogate; use printable keys.`,
    );
  }
  checkKeyBytes(key, `${where}key`);
  return key;
}

/** The ordering key of a message on `ch`, or null (unordered channel, or no key given). */
function orderingKeyOf(
  ch: CustomChannel<any, boolean>,
  payload: unknown,
  options: NotifyOptions,
): string | null {
  const given = options.orderingKey;
  if (given !== undefined && !ch.ordered) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `notify(): channel "${ch.name}" is not ordered, so \`orderingKey\` would be ignored. Declare it with channel(name, schema, { key }) or { ordered: true }.`,
    );
  }
  if (!ch.ordered) return null;
  let key: unknown;
  try {
    key = given !== undefined ? given : ch.key ? ch.key(payload) : null;
  } catch (error) {
    throw invalidOptions(
      `the key function of ordered channel "${ch.name}" threw: ${(error as Error)?.message ?? String(error)}. Nothing was stored.`,
      error,
    );
  }
  if (key !== null && (typeof key !== 'string' || key.includes('\0') || !key.isWellFormed())) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `notify(): the ordering key of a message on channel "${ch.name}" must be a string without NUL characters, got ${typeof key === 'string' ? JSON.stringify(key.slice(0, 40)) : typeof key}. Nothing was stored.`,
    );
  }
  if (key !== null) checkKeyBytes(key as string, `the ordering key of a message on channel "${ch.name}"`);
  return key as string | null;
}

function result(row: { notification_id: string; outcome: string }): NotifyResult {
  const outcome = row.outcome as NotifyOutcome;
  return { id: BigInt(row.notification_id), outcome, duplicate: outcome !== 'inserted' };
}

/** The rows a driver returns from `execute` (postgres.js: an array; node-postgres: `.rows`). */
function rowsOf(value: unknown): Record<string, unknown>[] {
  if (Array.isArray(value)) return value as Record<string, unknown>[];
  const rows = (value as { rows?: unknown } | null)?.rows;
  return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
}

/**
 * Sends a message on a custom channel, inside the caller's transaction: it is stored (durable
 * channel) or NOTIFY'd (broadcast channel) if and only if that transaction commits. The payload is
 * validated first; an invalid payload throws `INVALID_PAYLOAD` naming the field, and nothing is written.
 *
 * On a durable channel it takes job options (docs/jobs.md): `runAt`/`delayMs` (delay), `key` and
 * `onDuplicate` (deduplication), `priority`; and an array of payloads is sent in one statement
 * (every payload is validated first; one invalid payload refuses the call, naming its index). A
 * channel whose payload is itself an array sends one payload as `[payload]`.
 *
 * @example
 * await db.transaction(async (tx) => {
 *   await tx.insert(orders).values(order);
 *   await notify(tx, emailRequested, { to: 'a@b.c', subject: 'Thanks' });
 *   await notify(tx, reminder, { orderId }, { delayMs: 3_600_000, key: `remind-${orderId}` });
 * });
 */
export function notify<TSchema extends StandardSchemaV1>(
  tx: SqlExecutor,
  ch: CustomChannel<TSchema, false>,
  payloads: readonly StandardSchemaV1.InferInput<TSchema>[],
  options?: BulkNotifyOptions<StandardSchemaV1.InferInput<TSchema>>,
): Promise<BulkNotifyResult>;
export function notify<TSchema extends StandardSchemaV1>(
  tx: SqlExecutor,
  ch: CustomChannel<TSchema, false>,
  payload: StandardSchemaV1.InferInput<TSchema>,
  options?: NotifyOptions,
): Promise<NotifyResult>;
export function notify<TSchema extends StandardSchemaV1>(
  tx: SqlExecutor,
  ch: CustomChannel<TSchema, true>,
  payload: StandardSchemaV1.InferInput<TSchema>,
  options?: { schema?: string },
): Promise<BroadcastResult>;
export function notify<TSchema extends StandardSchemaV1>(
  tx: SqlExecutor,
  ch: CustomChannel<TSchema, boolean>,
  payload: StandardSchemaV1.InferInput<TSchema>,
  options?: { schema?: string },
): Promise<NotifyResult | BroadcastResult>;
export async function notify(
  tx: SqlExecutor,
  ch: CustomChannel<StandardSchemaV1, boolean>,
  payload: unknown,
  options: NotifyOptions | BulkNotifyOptions<unknown> = {},
): Promise<NotifyResult | BulkNotifyResult | BroadcastResult> {
  if (!isChannel(ch) || ch.kind !== 'custom') {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      'notify() takes a channel made by channel(name, schema). Trigger channels are fed by their table triggers.',
    );
  }
  checkKnownOptions(options);
  const { schema, key, orderingKey, ...rest } = options as NotifyOptions;
  if (ch.broadcast) {
    if (Object.values(rest).some((v) => v !== undefined) || key !== undefined) {
      throw invalidOptions(
        `broadcast channel "${ch.name}" stores nothing, so it takes no job options (runAt, delayMs, key, onDuplicate, priority). Use a durable channel.`,
      );
    }
    if (Array.isArray(payload)) {
      throw invalidOptions(`broadcast channel "${ch.name}" sends one payload per call.`);
    }
    const json = await serializePayload(ch, payload);
    const bytes = byteLength(json);
    if (bytes > MAX_BROADCAST_BYTES) {
      throw new PgPubSubError(
        'PAYLOAD_TOO_LARGE',
        `Broadcast payload for channel "${ch.name}" is ${bytes} bytes; NOTIFY carries at most ${MAX_BROADCAST_BYTES}. Send an id and load the data in the handler, or make the channel durable (no size limit).`,
      );
    }
    await tx.execute(sql`SELECT pg_notify(${ch.name}, ${json})`);
    return { id: null, outcome: 'sent', duplicate: false };
  }
  const storage = schema ?? DEFAULT_SCHEMA;
  await withTraceContext(tx);
  if (ch.ordered || orderingKey !== undefined) {
    return notifyOrdered(tx, ch, payload, options, storage);
  }
  if (Array.isArray(payload)) {
    if (key !== undefined && typeof key !== 'function') {
      throw invalidOptions('with an array of payloads, key is a function (payload, index) => key.');
    }
    const keyOf = key as BulkNotifyOptions<unknown>['key'];
    const jsons: string[] = [];
    const keys: (string | null)[] = [];
    for (const [index, item] of payload.entries()) {
      try {
        jsons.push(await serializePayload(ch, item));
        keys.push(keyOf ? checkKey(callKey(keyOf, item, index), '') : null);
      } catch (error) {
        if (error instanceof PgPubSubError) {
          throw new PgPubSubError(error.code, `Payload at index ${index}: ${error.message}`, {
            cause: error,
          });
        }
        throw error;
      }
    }
    if (jsons.length === 0) return { ids: [], results: [] };
    const opts =
      jobOptions(
        rest,
        keys.some((k) => k !== null),
      ) ?? {};
    if (keys.some((k) => k !== null)) opts.keys = keys;
    const rows = await executeMany(tx, storage, ch.name, `[${jsons.join(',')}]`, opts);
    const results = rows.map(result);
    return { ids: results.map((r) => r.id), results };
  }
  if (typeof key === 'function') throw invalidOptions('key is a string for one payload.');
  const checked = checkKey(key, '');
  const json = await serializePayload(ch, payload);
  const opts = jobOptions(rest, checked !== null);
  if (opts === null) {
    const fn = sql.raw(notifyFunctionRef(storage));
    const rows = rowsOf(await tx.execute(sql`SELECT ${fn}(${ch.name}, ${json}::text::jsonb)::text AS "id"`));
    return { id: BigInt(String(rows[0]?.id)), outcome: 'inserted', duplicate: false };
  }
  if (checked !== null) opts.keys = [checked];
  const [row] = await executeMany(tx, storage, ch.name, `[${json}]`, opts);
  return result(row!);
}

/**
 * An ordered channel's messages, one statement each through the three-argument notify function,
 * which takes a transaction-scoped lock on (channel, key) first (storage/notifications.ts), so id
 * order is commit order per key. Job options would break that order (a delayed or prioritised
 * message overtaking, a replaced one moving), so they are refused.
 */
async function notifyOrdered(
  tx: SqlExecutor,
  ch: CustomChannel<StandardSchemaV1, boolean>,
  payload: unknown,
  options: NotifyOptions | BulkNotifyOptions<unknown>,
  storage: string,
): Promise<NotifyResult | BulkNotifyResult> {
  const { orderingKey, schema: _schema, ...jobs } = options as NotifyOptions;
  const used = Object.entries(jobs)
    .filter(([, v]) => v !== undefined)
    .map(([k]) => k);
  if (used.length > 0 && ch.ordered) {
    throw invalidOptions(
      `channel "${ch.name}" is ordered, and ${used.join(', ')} would let a message overtake or move within its key's order. Send it without ${used.length > 1 ? 'these options' : 'this option'}, or on an unordered channel. Nothing was stored.`,
    );
  }
  const fn = sql.raw(notifyFunctionRef(storage));
  const one = async (item: unknown): Promise<NotifyResult> => {
    const json = await serializePayload(ch, item);
    const key = orderingKeyOf(ch, item, { orderingKey } as NotifyOptions);
    const rows = rowsOf(
      await tx.execute(
        key === null
          ? sql`SELECT ${fn}(${ch.name}, ${json}::text::jsonb)::text AS "id"`
          : sql`SELECT ${fn}(${ch.name}, ${json}::text::jsonb, ${key}::text)::text AS "id"`,
      ),
    );
    return { id: BigInt(String(rows[0]?.id)), outcome: 'inserted', duplicate: false };
  };
  if (!Array.isArray(payload)) return one(payload);
  const results: NotifyResult[] = [];
  for (const [index, item] of payload.entries()) {
    try {
      results.push(await one(item));
    } catch (error) {
      if (error instanceof PgPubSubError) {
        throw new PgPubSubError(error.code, `Payload at index ${index}: ${error.message}`, { cause: error });
      }
      throw error;
    }
  }
  return { ids: results.map((r) => r.id), results };
}

async function executeMany(
  tx: SqlExecutor,
  schema: string,
  channel: string,
  payloads: string,
  options: Record<string, unknown>,
): Promise<{ notification_id: string; outcome: string }[]> {
  const fn = sql.raw(`${quoteIdent(schema)}."notify_many"`);
  const rows = rowsOf(
    await tx.execute(
      sql`SELECT "notification_id"::text AS "notification_id", "outcome" FROM ${fn}(${channel}, ${payloads}::text::jsonb, ${JSON.stringify(options)}::text::jsonb)`,
    ),
  );
  return rows as { notification_id: string; outcome: string }[];
}

/**
 * Attaches JSON context (tenant id, trace id, actor…) to every notification the transaction
 * produces, triggers and `notify()` alike. It is local to the transaction: nothing leaks into later
 * work on the same pooled connection. Calling it again merges the new keys in.
 */
export async function withContext(tx: SqlExecutor, context: Record<string, unknown>): Promise<void> {
  if (!isDrizzleTransaction(tx)) {
    throw new PgPubSubError(
      'INVALID_CONTEXT',
      'withContext() must be given a transaction: call it inside db.transaction(async (tx) => …) with that tx.',
    );
  }
  if (typeof context !== 'object' || context === null || Array.isArray(context)) {
    throw new PgPubSubError(
      'INVALID_CONTEXT',
      'withContext() takes a plain JSON object, e.g. { tenant: "t1" }.',
    );
  }
  let json: string;
  try {
    json = JSON.stringify(context, storableString);
  } catch (error) {
    if (error instanceof PgPubSubError) {
      throw new PgPubSubError('INVALID_CONTEXT', `withContext(): ${error.message}`);
    }
    throw new PgPubSubError(
      'INVALID_CONTEXT',
      `Context cannot be serialized to JSON: ${(error as Error).message}`,
    );
  }
  await tx.execute(
    sql`SELECT set_config('pgpubsub.context', (coalesce(nullif(current_setting('pgpubsub.context', true), ''), '{}')::jsonb || ${json}::text::jsonb)::text, true)`,
  );
}

/**
 * Records the active OpenTelemetry span's W3C trace context (`traceparent`, and `tracestate` if
 * any) in the transaction's context, like `withContext(tx, { traceparent, tracestate })`, so the
 * handlers of every notification the transaction produces run in spans linked to this trace
 * (docs/observability.md). `notify()` does this by itself; call it in transactions whose writes
 * feed trigger channels. A no-op (no query) when `@opentelemetry/api` is not installed, no span is
 * active, or `tx` is not a transaction. Returns the fields it recorded, or `null`.
 *
 * @example
 * await tracer.startActiveSpan('create author', (span) =>
 *   db.transaction(async (tx) => {
 *     await withTraceContext(tx);
 *     await tx.insert(authors).values({ name: 'Ann' });
 *   }).finally(() => span.end()));
 */
export async function withTraceContext(tx: SqlExecutor): Promise<TraceContextFields | null> {
  const fields = activeTraceContext();
  if (fields === null || !isDrizzleTransaction(tx)) return null;
  await withContext(tx, fields as unknown as Record<string, unknown>);
  return fields;
}

/**
 * Turns off the wake-up NOTIFY of every notification the transaction produces (triggers and
 * `notify()` alike), for two-phase commit: `PREPARE TRANSACTION` refuses a transaction that sent a
 * NOTIFY, which a write to a watched table does while a live listener is idle. The notifications are
 * stored as usual; an idle listener picks them up at its next safety sweep (`pollIntervalMs`,
 * default 15 s) or the channel's next wake-up, whichever comes first: with `pollIntervalMs: false`,
 * only the latter. Local to the transaction, like `SET LOCAL pgpubsub.wake = 'off'`, which producers
 * without Drizzle can run themselves. Broadcasts are NOTIFYs themselves and are not affected.
 */
export async function withoutWakeup(tx: SqlExecutor): Promise<void> {
  await tx.execute(sql`SELECT set_config(${WAKE_SETTING}, 'off', true)`);
}
