import { getTableColumns, getTableName, is } from 'drizzle-orm';
import { getTableConfig, PgTable } from 'drizzle-orm/pg-core';
import { PgPubSubError } from './errors.ts';
import { byteLength, MAX_IDENTIFIER_BYTES } from './identifiers.ts';
import type { StandardSchemaV1 } from './standard-schema.ts';

/**
 * An operation a trigger channel can react to: row operations, and `truncate` (one event per
 * truncated table and statement, without row images). Without `truncate`, TRUNCATE is silent.
 */
export type TriggerOp = 'insert' | 'update' | 'delete' | 'truncate';

const TRIGGER_OPS: readonly TriggerOp[] = ['insert', 'update', 'delete', 'truncate'];
const KIND = Symbol.for('drizzle-pgpubsub.channel');

/** Options of {@link triggerChannel}. */
export interface TriggerChannelOptions<TTable extends PgTable, TOp extends TriggerOp> {
  /**
   * Which operations produce notifications: a non-empty subset of `insert`, `update`, `delete`,
   * `truncate` (a statement-level event per truncated table, `TRUNCATE … CASCADE` included).
   */
  on: readonly [TOp, ...TOp[]];
  /** Channel name (1–63 bytes). Defaults to the table name, schema-qualified outside `public`. */
  name?: string;
  /** Update events only when one of these columns (JS keys of the table) actually changed. */
  columns?: readonly (keyof TTable['_']['columns'] & string)[];
  /**
   * An extra SQL condition, evaluated per row. Refer to the row as `NEW` (insert, update) and `OLD`
   * (update, delete); the missing one is all NULL. Example: `NEW.status = 'published'`.
   */
  when?: string;
}

/** Options of {@link channel}. */
export interface ChannelOptions {
  /**
   * `true`: every listening process gets every message and nothing is stored (cache invalidation,
   * live updates). Payloads must fit PostgreSQL's NOTIFY limit (7999 bytes of JSON).
   * Default `false`: durable, stored, each message handled exactly once by one listener.
   */
  broadcast?: boolean;
}

/** A channel fed by AFTER triggers on a Drizzle table. Create it with {@link triggerChannel}. */
export interface TriggerChannel<TTable extends PgTable = PgTable, TOp extends TriggerOp = TriggerOp> {
  readonly [KIND]: 'trigger';
  readonly kind: 'trigger';
  readonly name: string;
  readonly table: TTable;
  readonly ops: readonly TOp[];
  readonly columns: readonly string[];
  readonly when: string | undefined;
  readonly broadcast: false;
}

/** A channel whose messages are sent with `notify()`. Create it with {@link channel}. */
export interface CustomChannel<
  TSchema extends StandardSchemaV1 = StandardSchemaV1,
  TBroadcast extends boolean = boolean,
> {
  readonly [KIND]: 'custom';
  readonly kind: 'custom';
  readonly name: string;
  readonly schema: TSchema;
  readonly broadcast: TBroadcast;
}

/** Any channel. */
export type AnyChannel = TriggerChannel<any, any> | CustomChannel<any, boolean>;

/**
 * Throws a {@link PgPubSubError} unless `name` is a valid channel name: 1–63 bytes of UTF-8 (the
 * PostgreSQL identifier limit, which LISTEN would otherwise silently truncate), no control
 * characters, no leading or trailing spaces.
 */
export function assertChannelName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new PgPubSubError(
      'INVALID_CHANNEL_NAME',
      `Channel name must be a non-empty string, got ${String(name)}.`,
    );
  }
  const bytes = byteLength(name);
  if (bytes > MAX_IDENTIFIER_BYTES) {
    throw new PgPubSubError(
      'INVALID_CHANNEL_NAME',
      `Channel name "${name}" is ${bytes} bytes long; PostgreSQL allows at most ${MAX_IDENTIFIER_BYTES}. Pass a shorter \`name\`.`,
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
  if (/[\u0000-\u001f\u007f]/.test(name) || name.trim() !== name) {
    throw new PgPubSubError(
      'INVALID_CHANNEL_NAME',
      `Channel name ${JSON.stringify(name)} contains control characters or leading/trailing spaces. Use printable characters only.`,
    );
  }
}

/**
 * Declares a channel fed by AFTER triggers on `table`. Export it beside the table; `drizzle-pgpubsub
 * generate` turns it into a trigger migration. The table must have a primary key.
 *
 * @example
 * export const authorEvents = triggerChannel(authors, { on: ['insert', 'update', 'delete'] });
 */
export function triggerChannel<TTable extends PgTable, const TOp extends TriggerOp>(
  table: TTable,
  options: TriggerChannelOptions<TTable, TOp>,
): TriggerChannel<TTable, TOp> {
  if (!is(table, PgTable)) {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      'triggerChannel() expects a Drizzle pgTable as its first argument.',
    );
  }
  const config = getTableConfig(table);
  const ops = options?.on;
  if (!Array.isArray(ops) || ops.length === 0 || ops.some((op) => !TRIGGER_OPS.includes(op))) {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      `triggerChannel(${config.name}): \`on\` must be a non-empty array of 'insert', 'update', 'delete'.`,
    );
  }
  const name = options.name ?? (config.schema ? `${config.schema}.${config.name}` : config.name);
  assertChannelName(name);
  const known = getTableColumns(table);
  for (const key of options.columns ?? []) {
    if (!(key in known)) {
      throw new PgPubSubError(
        'INVALID_CHANNEL',
        `triggerChannel "${name}": \`columns\` names "${key}", which is not a column of ${getTableName(table)}. Use the JS keys of the table's columns.`,
      );
    }
  }
  return Object.freeze({
    [KIND]: 'trigger' as const,
    kind: 'trigger' as const,
    name,
    table,
    ops: [...new Set(ops)].sort((a, b) => TRIGGER_OPS.indexOf(a) - TRIGGER_OPS.indexOf(b)),
    columns: [...(options.columns ?? [])],
    when: options.when,
    broadcast: false as const,
  });
}

/**
 * Declares a custom channel whose payload is validated by `schema` (valibot, or any Standard Schema
 * v1 object such as zod 4 or arktype). Send with `notify(tx, channel, payload)`.
 *
 * @example
 * export const emailRequested = channel('email_requested', v.object({ to: v.string(), subject: v.string() }));
 */
export function channel<TSchema extends StandardSchemaV1, const TOptions extends ChannelOptions = {}>(
  name: string,
  schema: TSchema,
  options?: TOptions,
): CustomChannel<TSchema, TOptions['broadcast'] extends true ? true : false> {
  assertChannelName(name);
  if (typeof schema?.['~standard']?.validate !== 'function') {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      `channel("${name}"): the second argument must be a valibot schema (or another Standard Schema v1 object).`,
    );
  }
  return Object.freeze({
    [KIND]: 'custom' as const,
    kind: 'custom' as const,
    name,
    schema,
    broadcast: (options?.broadcast === true) as TOptions['broadcast'] extends true ? true : false,
  });
}

/** True when `value` is a channel made by {@link triggerChannel} or {@link channel}. */
export function isChannel(value: unknown): value is AnyChannel {
  return (
    typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[KIND] !== undefined
  );
}

/** True when `value` is a trigger channel. */
export function isTriggerChannel(value: unknown): value is TriggerChannel<any, any> {
  return isChannel(value) && value.kind === 'trigger';
}
