import { sql } from 'drizzle-orm';
import type { CustomChannel } from './channel.ts';
import { isChannel } from './channel.ts';
import { isDrizzleTransaction } from './drizzle-compat.ts';
import { PgPubSubError } from './errors.ts';
import { byteLength } from './identifiers.ts';
import { formatIssues, type StandardSchemaV1 } from './standard-schema.ts';
import { DEFAULT_SCHEMA } from './storage/notifications.ts';
import { notifyFunctionRef, WAKE_SETTING } from './storage/sql-names.ts';

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

/** Options of {@link notify}. */
export interface NotifyOptions {
  /** The pg schema of the storage, when it is not `pgpubsub`. */
  schema?: string;
  /**
   * Ordered channels: the ordering key of this message, overriding the channel's `key` function.
   * Messages with the same key are handled one at a time, in commit order.
   */
  orderingKey?: string;
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
  const key = given !== undefined ? given : ch.key ? ch.key(payload) : null;
  if (key !== null && (typeof key !== 'string' || key.includes('\0') || !key.isWellFormed())) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `notify(): the ordering key of a message on channel "${ch.name}" must be a string without NUL characters, got ${typeof key === 'string' ? JSON.stringify(key.slice(0, 40)) : typeof key}. Nothing was stored.`,
    );
  }
  return key;
}

/**
 * Sends a message on a custom channel, inside the caller's transaction: it is stored (durable
 * channel) or NOTIFY'd (broadcast channel) if and only if that transaction commits. The payload is
 * validated first; an invalid payload throws `INVALID_PAYLOAD` naming the field, and nothing is written.
 *
 * @example
 * await db.transaction(async (tx) => {
 *   await tx.insert(orders).values(order);
 *   await notify(tx, emailRequested, { to: 'a@b.c', subject: 'Thanks' });
 * });
 */
export async function notify<TSchema extends StandardSchemaV1>(
  tx: SqlExecutor,
  ch: CustomChannel<TSchema, boolean>,
  payload: StandardSchemaV1.InferInput<TSchema>,
  options: NotifyOptions = {},
): Promise<void> {
  if (!isChannel(ch) || ch.kind !== 'custom') {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      'notify() takes a channel made by channel(name, schema). Trigger channels are fed by their table triggers.',
    );
  }
  const json = await serializePayload(ch, payload);
  const orderingKey = orderingKeyOf(ch, payload, options);
  if (ch.broadcast) {
    const bytes = byteLength(json);
    if (bytes > MAX_BROADCAST_BYTES) {
      throw new PgPubSubError(
        'PAYLOAD_TOO_LARGE',
        `Broadcast payload for channel "${ch.name}" is ${bytes} bytes; NOTIFY carries at most ${MAX_BROADCAST_BYTES}. Send an id and load the data in the handler, or make the channel durable (no size limit).`,
      );
    }
    await tx.execute(sql`SELECT pg_notify(${ch.name}, ${json})`);
    return;
  }
  const fn = sql.raw(notifyFunctionRef(options.schema ?? DEFAULT_SCHEMA));
  if (orderingKey !== null) {
    // Takes a transaction-scoped lock on (channel, key) first: see the function in storage/notifications.ts.
    await tx.execute(sql`SELECT ${fn}(${ch.name}, ${json}::text::jsonb, ${orderingKey}::text)`);
    return;
  }
  await tx.execute(sql`SELECT ${fn}(${ch.name}, ${json}::text::jsonb)`);
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
