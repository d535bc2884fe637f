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
  /**
   * `true`: events of the same row (same primary key) are handled one at a time, in commit order,
   * across every listener process and machine; other rows flow in parallel. Default `false`.
   * See docs/channels.md#ordered-channels.
   */
  ordered?: boolean;
  /** What a dead-lettered event does to its key on an ordered channel (default `'block'`). */
  onDeadLetter?: OnDeadLetter;
}

/**
 * What a dead-lettered (`failed`) event does to the later events of its key on an ordered channel:
 * `'block'` (default) holds them until the failed one is retried and succeeds or is purged;
 * `'skip'` lets them flow, so the key's order has a gap where the failed event was.
 */
export type OnDeadLetter = 'block' | 'skip';

const DEAD_LETTER_CHOICES: readonly OnDeadLetter[] = ['block', 'skip'];

/** Options of {@link channel}. */
export interface ChannelOptions<TPayload = any> {
  /**
   * Makes the channel ordered: notifications with the same key are handled one at a time, in
   * commit order, across every listener. `notify(…, { orderingKey })` overrides it per message.
   */
  key?: (payload: TPayload) => string;
  /** Ordered without a default key: only messages sent with `orderingKey` are ordered. */
  ordered?: boolean;
  /** What a dead-lettered message does to its key (ordered channels; default `'block'`). */
  onDeadLetter?: OnDeadLetter;
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
  /** Events of one primary key are handled one at a time, in commit order. */
  readonly ordered: boolean;
  readonly onDeadLetter: OnDeadLetter;
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
  /** Messages with the same ordering key are handled one at a time, in commit order. */
  readonly ordered: boolean;
  /** The default ordering key of a message (from `channel(…, { key })`). */
  readonly key: ((payload: any) => string) | undefined;
  readonly onDeadLetter: OnDeadLetter;
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
  if (options.ordered !== undefined && typeof options.ordered !== 'boolean') {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      `triggerChannel "${name}": \`ordered\` must be true or false.`,
    );
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
    ordered: options.ordered === true,
    onDeadLetter: deadLetterChoice(name, options.onDeadLetter),
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
  options?: TOptions & ChannelOptions<StandardSchemaV1.InferInput<TSchema>>,
): CustomChannel<TSchema, TOptions['broadcast'] extends true ? true : false> {
  assertChannelName(name);
  if (typeof schema?.['~standard']?.validate !== 'function') {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      `channel("${name}"): the second argument must be a valibot schema (or another Standard Schema v1 object).`,
    );
  }
  const key = options?.key;
  if (key !== undefined && typeof key !== 'function') {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      `channel("${name}"): \`key\` must be a function of the payload returning a string, e.g. { key: (p) => p.customerId }.`,
    );
  }
  const ordered = options?.ordered === true || key !== undefined;
  if (ordered && options?.broadcast === true) {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      `channel("${name}"): a broadcast channel cannot be ordered (nothing is stored to order). Remove \`key\`/\`ordered\` or \`broadcast\`.`,
    );
  }
  return Object.freeze({
    [KIND]: 'custom' as const,
    kind: 'custom' as const,
    name,
    schema,
    broadcast: (options?.broadcast === true) as TOptions['broadcast'] extends true ? true : false,
    ordered,
    key,
    onDeadLetter: deadLetterChoice(name, options?.onDeadLetter),
  });
}

function deadLetterChoice(name: string, choice: unknown): OnDeadLetter {
  if (choice === undefined) return 'block';
  if (!DEAD_LETTER_CHOICES.includes(choice as OnDeadLetter)) {
    throw new PgPubSubError(
      'INVALID_CHANNEL',
      `Channel "${name}": \`onDeadLetter\` must be 'block' or 'skip', got ${JSON.stringify(choice)}.`,
    );
  }
  return choice as OnDeadLetter;
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
