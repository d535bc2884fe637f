import { quoteIdent } from '../identifiers.ts';

/**
 * The SQL names of drizzle-pgpubsub's storage and the predicates over them: the one place that spells
 * them. Everything that writes SQL by hand (claim, idle protocol, admin, trigger functions, DDL) uses these.
 */

/** Name of the notifications table (in the configured pg schema). */
export const NOTIFICATIONS_TABLE = 'notifications';

/** Name of the table of installed schedules and their exactly-once fence (`last_slot`). */
export const SCHEDULES_TABLE = 'schedules';

/** Name of the table of `backfill()` progress (one row per channel). */
export const BACKFILLS_TABLE = 'backfills';

/** Quoted `"schema"."backfills"`. */
export function backfillsRef(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(BACKFILLS_TABLE)}`;
}

/** Name of the unlogged table of per-channel idle flags (the wake-up protocol). */
export const WAKEUPS_TABLE = 'wakeups';

/**
 * The transaction-local setting that turns a transaction's wake-up NOTIFYs off (`'off'`), for
 * two-phase-commit producers (PREPARE TRANSACTION refuses a transaction that sent a NOTIFY).
 */
export const WAKE_SETTING = 'pgpubsub.wake';

/**
 * The comment that starts the statements a listener runs on its LISTEN session (the last one stays in
 * `pg_stat_activity.query`, so `status()` can count live listeners).
 */
export const LISTEN_SESSION_MARK = '/* drizzle-pgpubsub LISTEN session */';

/**
 * The tag whose `hashtext` is the class (first key) of the advisory locks that tie wake-up flags to
 * live listener sessions of a storage schema. Listeners pass it as a parameter, producers have it as a
 * literal: both hash it on the same server.
 */
export function wakeLockTag(schema: string): string {
  return `drizzle-pgpubsub wakeups ${quoteIdent(schema)}`;
}

/** Name of the SQL function `notify(channel, payload)` that producers without Drizzle call. */
export const NOTIFY_FUNCTION = 'notify';

/** Quoted `"schema"."notify"`. */
export function notifyFunctionRef(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(NOTIFY_FUNCTION)}`;
}

/** Quoted `"schema"."notifications"`. */
export function notificationsRef(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(NOTIFICATIONS_TABLE)}`;
}

/** Quoted `"schema"."schedules"`. */
export function schedulesRef(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(SCHEDULES_TABLE)}`;
}

/** Quoted `"schema"."wakeups"`. */
export function wakeupsRef(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(WAKEUPS_TABLE)}`;
}

const column = (alias: string | undefined, name: string) => (alias ? `${alias}."${name}"` : `"${name}"`);

/** A notification that is pending and due now: `"status" = 'pending' AND "run_at" <= now()`. */
export function pendingAndDue(alias?: string): string {
  return `${column(alias, 'status')} = 'pending' AND ${column(alias, 'run_at')} <= now()`;
}

/** A notification that is pending but not yet due (a retry waiting for its backoff). */
export function pendingScheduled(alias?: string): string {
  return `${column(alias, 'status')} = 'pending' AND ${column(alias, 'run_at')} > now()`;
}

/** The transaction-local setting `withContext()` writes and the trigger functions read. */
export const CONTEXT_SETTING = 'pgpubsub.context';

/** Name of the index ordered claims descend to find an earlier event of the same key. */
export const ORDERING_INDEX = 'notifications_ordering_idx';

/**
 * The single-bigint advisory lock key of (channel, ordering key), both SQL expressions: a producer
 * of an ordered message holds it until commit (the one-bigint key space never meets the two-int4
 * locks of the wake-up protocol).
 */
export function orderingLockKey(channel: string, key: string): string {
  return `hashtextextended(jsonb_build_array(${channel}, ${key})::text, 0)`;
}

/**
 * What a listener publishes about itself on its LISTEN session (the session's last statement, so it
 * stays in `pg_stat_activity.query`): no table, no write, nothing on the claim path.
 */
export interface ListenerPresence {
  /** `os.hostname()` of the listener's process. */
  host: string;
  /** The listener's process id (on its host). */
  pid: number;
  /** Channels the listener handles (cut short to keep the statement small; `more` counts the rest). */
  channels: string[];
  more?: number;
  /** When the listener started, epoch ms. */
  startedAt: number;
  /** When its last claim took work, epoch ms; `null`: none yet. Published at most every few seconds. */
  lastClaimAt: number | null;
  /** Notifications it handled so far (as of `lastClaimAt`). */
  handled: number;
}

/**
 * Most bytes of presence JSON a listener publishes: `pg_stat_activity.query` keeps the first
 * `track_activity_query_size` bytes (default 1024) of a statement.
 */
const PRESENCE_MAX_BYTES = 900;

const PRESENCE_PREFIX = `${LISTEN_SESSION_MARK} SELECT '`;
const PRESENCE_SUFFIX = `'::text AS presence`;

/** The statement that publishes `presence` (a constant SELECT; its text is the message). */
export function presenceSql(presence: ListenerPresence): string {
  const literal = (info: ListenerPresence) => JSON.stringify(info).replaceAll("'", "''");
  let text = literal(presence);
  for (
    let keep = presence.channels.length - 1;
    Buffer.byteLength(text) > PRESENCE_MAX_BYTES && keep >= 0;
    keep--
  ) {
    text = literal({
      ...presence,
      channels: presence.channels.slice(0, keep),
      more: presence.channels.length - keep,
    });
  }
  return `${PRESENCE_PREFIX}${text}${PRESENCE_SUFFIX}`;
}

/** The presence in a LISTEN session's `pg_stat_activity.query`, or `undefined` (older version, cut, other statement). */
export function parsePresence(query: string): ListenerPresence | undefined {
  if (!query.startsWith(PRESENCE_PREFIX) || !query.endsWith(PRESENCE_SUFFIX)) return undefined;
  try {
    const value = JSON.parse(
      query.slice(PRESENCE_PREFIX.length, -PRESENCE_SUFFIX.length).replaceAll("''", "'"),
    ) as Partial<ListenerPresence> | null;
    if (
      typeof value !== 'object' ||
      value === null ||
      typeof value.host !== 'string' ||
      typeof value.pid !== 'number' ||
      !Array.isArray(value.channels)
    ) {
      return undefined;
    }
    return {
      host: value.host,
      pid: value.pid,
      channels: value.channels.map(String),
      ...(typeof value.more === 'number' ? { more: value.more } : {}),
      startedAt: Number(value.startedAt),
      lastClaimAt: typeof value.lastClaimAt === 'number' ? value.lastClaimAt : null,
      handled: Number(value.handled ?? 0),
    };
  } catch {
    return undefined;
  }
}

/**
 * Name of the table of packed notifications (storage version 5): one row holds the images of up to
 * {@link PACK_CHUNK} row events of one statement on an unordered trigger channel, until a listener
 * of the channel expands it into ordinary notifications ({@link EXPAND_FUNCTION}).
 */
export const PACKED_TABLE = 'packed';

/** Quoted `"schema"."packed"`. */
export function packedRef(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(PACKED_TABLE)}`;
}

/** Name of the SQL function `expand_packed(channel, filter)` that listeners call before claiming. */
export const EXPAND_FUNCTION = 'expand_packed';

/** Quoted `"schema"."expand_packed"`. */
export function expandFunctionRef(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(EXPAND_FUNCTION)}`;
}

/**
 * Row events of one statement from which a trigger channel packs them (fewer: one notification row
 * each, as before storage version 5). Measured in docs/benchmarks.md (W4, issue 18).
 */
export const PACK_THRESHOLD = 8;

/** Images one packed row holds at most: bounds its size and the work of one expansion. */
export const PACK_CHUNK = 1000;

/**
 * Bytes of images a packed row starts at most (its last image may take it past): a jsonb value holds
 * at most 256 MB, so a chunk of {@link PACK_CHUNK} large images must be cut shorter.
 */
export const PACK_CHUNK_BYTES = 64 * 1024 * 1024;

/** A statement with an image larger than this is stored one row per event (no packed row nears 256 MB). */
export const PACK_MAX_IMAGE_BYTES = 16 * 1024 * 1024;
