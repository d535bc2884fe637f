import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import { dollarQuote, quoteIdent, quoteLiteral } from '../identifiers.ts';
import { packedStorageSql } from './packed.ts';
import { createSchedulesTableSql } from './schedules.ts';
import {
  BACKFILLS_TABLE,
  backfillsRef,
  NOTIFICATIONS_TABLE,
  notificationsRef,
  notifyFunctionRef,
  ORDERING_INDEX,
  orderingLockKey,
  WAKE_SETTING,
  WAKEUPS_TABLE,
  wakeLockTag,
  wakeupsRef,
} from './sql-names.ts';

/** The pg schema that holds the notifications table unless configured otherwise. */
export const DEFAULT_SCHEMA = 'pgpubsub';

/** The one CHECK of the notifications table (storage version 5: it replaced one on "op" and one on "status"). */
const NOTIFICATIONS_CHECK = `CONSTRAINT "notifications_check" CHECK ("op" IN ('insert', 'update', 'delete', 'snapshot', 'truncate') AND "status" IN ('pending', 'failed'))`;

/** Version of the storage layout that {@link storageMigrationSql} creates. */
export const STORAGE_VERSION = 5;

/**
 * Whether a producer must NOTIFY (the protocol and its no-loss argument: runtime/idle.ts).
 *
 * READ COMMITTED: some flag `(channel, key)` is set and the LISTEN session that set it is alive, i.e.
 * holds the advisory lock `(class, key)`: the producer's shared try-lock on it fails exactly then
 * (producers' shared locks do not conflict with each other), so flags left by a listener that
 * stopped or died cost a try-lock, never a NOTIFY. The flag is read after the notification row is
 * written, so the producer already has its transaction id.
 *
 * REPEATABLE READ / SERIALIZABLE: the snapshot may predate a listener going idle, so the producer
 * NOTIFYs whenever some listener session of the schema is alive: each holds the presence lock
 * `(class, 0)` shared, and locks are read live (the exclusive try-lock is released at once).
 *
 * A transaction that ran `SET LOCAL pgpubsub.wake = 'off'` (`withoutWakeup(tx)`) never NOTIFYs: its
 * rows wait for the safety sweep or the channel's next wake-up (two-phase commit).
 */
export function wakeCondition(channel: string, schemaName: string): string {
  const lockClass = `hashtext(${quoteLiteral(wakeLockTag(schemaName))})`;
  return `(coalesce(current_setting('${WAKE_SETTING}', true), '') <> 'off' AND CASE WHEN current_setting('transaction_isolation') = 'read committed'
    THEN EXISTS (SELECT 1 FROM ${wakeupsRef(schemaName)} w WHERE w."channel" = ${channel} AND w."idle" AND NOT pg_try_advisory_xact_lock_shared(${lockClass}, w."key"))
    ELSE NOT (pg_try_advisory_lock(${lockClass}, 0) AND pg_advisory_unlock(${lockClass}, 0)) END)`;
}

/**
 * A cheap necessary condition of {@link wakeCondition}, for the trigger functions' write path: wake-ups
 * are not turned off and some listener session of the schema is alive (holds the presence lock
 * `(class, 0)` shared, which every session holding a flag's key lock also holds). It calls functions
 * only, no subquery, so plpgsql evaluates it on its fast path for simple expressions (about 2 µs)
 * instead of running a query through the executor (measured 15–25 % of a single-row INSERT's trigger
 * cost, docs/operations.md#what-writers-pay); `IF precheck THEN IF wakeCondition THEN NOTIFY` keeps
 * the full check for the moments a listener lives. The exclusive try-lock is released at once; a
 * miss because another producer holds it that instant only sends this producer on to the full check.
 * The no-loss argument is the REPEATABLE READ one of {@link wakeCondition}: the lock is read live,
 * after the producer has its xid, and a listener session that takes it later probes later.
 */
export function wakePrecheck(schemaName: string): string {
  const lockClass = `hashtext(${quoteLiteral(wakeLockTag(schemaName))})`;
  return `(coalesce(current_setting('${WAKE_SETTING}', true), '') <> 'off' AND NOT (pg_try_advisory_lock(${lockClass}, 0) AND pg_advisory_unlock(${lockClass}, 0)))`;
}

/** Status of a stored notification. Claimed notifications stay `pending` and are row-locked. */
export type NotificationStatus = 'pending' | 'failed';

function defineTables(schemaName: string) {
  const schema = pgSchema(schemaName);
  const notifications = schema.table(
    NOTIFICATIONS_TABLE,
    {
      id: bigint('id', { mode: 'bigint' }).primaryKey().generatedAlwaysAsIdentity(),
      channel: text('channel').notNull(),
      op: text('op').$type<'insert' | 'update' | 'delete' | 'snapshot' | 'truncate'>(),
      old: jsonb('old'),
      new: jsonb('new'),
      payload: jsonb('payload'),
      context: jsonb('context').$type<Record<string, unknown>>().notNull().default({}),
      status: text('status').$type<NotificationStatus>().notNull().default('pending'),
      attempts: integer('attempts').notNull().default(0),
      runAt: timestamp('run_at', { withTimezone: true }).notNull().defaultNow(),
      createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
      lastError: text('last_error'),
      failedAt: timestamp('failed_at', { withTimezone: true }),
      orderingKey: text('ordering_key'),
      dedupKey: text('dedup_key'),
      priority: integer('priority').notNull().default(0),
    },
    (t) => [
      index('notifications_claim_idx').on(t.channel, t.runAt, t.id).where(sql`status = 'pending'`),
      index(ORDERING_INDEX).on(t.channel, t.orderingKey, t.id).where(sql`ordering_key IS NOT NULL`),
      index('notifications_priority_idx')
        .on(t.channel, t.priority.desc(), t.runAt, t.id)
        .where(sql`status = 'pending' AND priority > 0`),
      uniqueIndex('notifications_dedup_idx')
        .on(t.channel, t.dedupKey)
        .where(sql`status = 'pending' AND dedup_key IS NOT NULL`),
    ],
  );
  const wakeups = schema.table(
    WAKEUPS_TABLE,
    {
      channel: text('channel').notNull(),
      key: integer('key').notNull(),
      idle: boolean('idle').notNull(),
    },
    (t) => [primaryKey({ columns: [t.channel, t.key] })],
  );
  const backfills = schema.table(BACKFILLS_TABLE, {
    channel: text('channel').primaryKey(),
    lastKey: jsonb('last_key').$type<Record<string, unknown>>(),
    whereSql: text('where_sql'),
    rows: bigint('rows', { mode: 'number' }).notNull().default(0),
    pages: bigint('pages', { mode: 'number' }).notNull().default(0),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  });
  return { notifications, wakeups, backfills };
}

/**
 * The notifications table (`pgpubsub.notifications`) as a Drizzle table, for typed queries such as
 * `db.select().from(notifications).where(eq(notifications.status, 'failed'))`.
 *
 * Import it from `drizzle-pgpubsub`; do not re-export it from your Drizzle schema files, or
 * `drizzle-kit generate` would try to create it a second time (`drizzle-pgpubsub generate` owns it).
 */
export const notifications = defineTables(DEFAULT_SCHEMA).notifications;

/** The wake-up flags table of a pg schema (internal: the idle protocol; exported for the storage test). */
export function wakeupsTable(schemaName: string) {
  return defineTables(schemaName).wakeups;
}

/** The backfill progress table of a pg schema (one row per channel; see `backfill()`). */
export function backfillsTable(schemaName: string = DEFAULT_SCHEMA) {
  return defineTables(schemaName).backfills;
}

/** The notifications table of a non-default pg schema (see {@link notifications}). */
export function notificationsTable(schemaName: string): typeof notifications {
  return defineTables(schemaName).notifications as unknown as typeof notifications;
}

/**
 * SQL statements that create (idempotently) the storage of drizzle-pgpubsub in `schemaName`:
 * the notifications table with its claim index, the unlogged wake-up flags, and `notify()`.
 */
export function storageMigrationSql(schemaName: string = DEFAULT_SCHEMA): string[] {
  const s = quoteIdent(schemaName);
  const table = notificationsRef(schemaName);
  const wakeups = wakeupsRef(schemaName);
  const backfills = backfillsRef(schemaName);
  return [
    `CREATE SCHEMA IF NOT EXISTS ${s}`,
    `CREATE TABLE IF NOT EXISTS ${table} (
  "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "channel" text NOT NULL,
  "op" text,
  "old" jsonb,
  "new" jsonb,
  "payload" jsonb,
  "context" jsonb NOT NULL DEFAULT '{}'::jsonb,
  "status" text NOT NULL DEFAULT 'pending',
  "attempts" integer NOT NULL DEFAULT 0,
  "run_at" timestamptz NOT NULL DEFAULT now(),
  "created_at" timestamptz NOT NULL DEFAULT now(),
  "last_error" text,
  "failed_at" timestamptz,
  "ordering_key" text,
  "dedup_key" text COLLATE "C",
  "priority" integer NOT NULL DEFAULT 0,
  ${NOTIFICATIONS_CHECK}
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)`,
    // Claims read this index in (run_at, id) order per channel, so a claim costs O(batch) whatever the backlog.
    `CREATE INDEX IF NOT EXISTS "notifications_claim_idx" ON ${table} ("channel", "run_at", "id") WHERE "status" = 'pending'`,
    `CREATE INDEX IF NOT EXISTS "notifications_failed_idx" ON ${table} ("channel", "failed_at") WHERE "status" = 'failed'`,
    // One flag per channel and listener session (`key`: the advisory lock its LISTEN session holds):
    // true while that listener sleeps and needs a NOTIFY. Producers only read it, so busy listeners
    // cost the write path no NOTIFY (NOTIFY serializes commits on a global lock).
    `CREATE UNLOGGED TABLE IF NOT EXISTS ${wakeups} ("channel" text NOT NULL, "key" integer NOT NULL, "idle" boolean NOT NULL, PRIMARY KEY ("channel", "key"))`,
    // Storage version 2 had one flag per channel: its flags are dropped (listeners set them again);
    // the table is altered in place so that its grants stay.
    `DO ${dollarQuote(`BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = ${quoteLiteral(wakeups)}::regclass AND attname = 'key' AND NOT attisdropped) THEN
    DELETE FROM ${wakeups};
    ALTER TABLE ${wakeups} DROP CONSTRAINT "wakeups_pkey", ADD COLUMN "key" integer NOT NULL, ADD PRIMARY KEY ("channel", "key");
  END IF;
END`)}`,
    `CREATE OR REPLACE FUNCTION ${notifyFunctionRef(schemaName)}("p_channel" text, "p_payload" jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${dollarQuote(`DECLARE
  v_id bigint;
BEGIN
  INSERT INTO ${table} ("channel", "payload", "context")
  VALUES (p_channel, p_payload, coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb))
  RETURNING "id" INTO v_id;
  IF ${wakeCondition('p_channel', schemaName)} THEN
    PERFORM pg_notify(p_channel, '');
  END IF;
  RETURN v_id;
END`)}`,
    // Storage version 4: installed schedules and their exactly-once fence (storage/schedules.ts).
    createSchedulesTableSql(schemaName),
    // Storage version 4: ordered channels (docs/channels.md#ordered-channels).
    `ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS "ordering_key" text`,
    // Whether an event has an earlier one of its key: one descent of this index (ordered claims).
    `CREATE INDEX IF NOT EXISTS ${quoteIdent(ORDERING_INDEX)} ON ${table} ("channel", "ordering_key", "id") WHERE "ordering_key" IS NOT NULL`,
    // notify() of an ordered message: the transaction-scoped lock on (channel, key) makes a second
    // producer of the key take its id only after the first one committed, so id order is commit order.
    `CREATE OR REPLACE FUNCTION ${notifyFunctionRef(schemaName)}("p_channel" text, "p_payload" jsonb, "p_ordering_key" text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${dollarQuote(`DECLARE
  v_id bigint;
BEGIN
  IF p_ordering_key IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(${orderingLockKey('p_channel', 'p_ordering_key')});
  END IF;
  INSERT INTO ${table} ("channel", "payload", "context", "ordering_key")
  VALUES (p_channel, p_payload, coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb), p_ordering_key)
  RETURNING "id" INTO v_id;
  IF ${wakeCondition('p_channel', schemaName)} THEN
    PERFORM pg_notify(p_channel, '');
  END IF;
  RETURN v_id;
END`)}`,
    // Storage version 4 (jobs: dedup keys, priorities). Upgrades add the columns in place.
    `ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS "dedup_key" text COLLATE "C"`,
    `ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS "priority" integer NOT NULL DEFAULT 0`,
    // At most one pending notification per channel and key (rows being handled included: see
    // notifyManySql). COLLATE "C" makes the successor keys (`key` U+0001 suffix) a range of this index.
    `CREATE UNIQUE INDEX IF NOT EXISTS "notifications_dedup_idx" ON ${table} ("channel", "dedup_key") WHERE "status" = 'pending' AND "dedup_key" IS NOT NULL`,
    // Claims take prioritised rows (priority > 0) from this index first; it holds nothing for
    // channels that never use priorities, whose claims stay on notifications_claim_idx alone.
    `CREATE INDEX IF NOT EXISTS "notifications_priority_idx" ON ${table} ("channel", "priority" DESC, "run_at", "id") WHERE "status" = 'pending' AND "priority" > 0`,
    notifyManySql(schemaName),
    // Storage version 4 added 'snapshot' (`backfill()`) and 'truncate' events; version 5 replaces the
    // two CHECKs on "op" and "status" (named by PostgreSQL after their columns) by one: PostgreSQL
    // reads every CHECK's expression anew for each INSERT statement, and the trigger functions' INSERTs
    // paid for two (docs/benchmarks.md, W4). Validated at once: the upgrade's transaction holds the
    // table's lock anyway, and the scan is one pass over the pending rows.
    `ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS "notifications_op_check", DROP CONSTRAINT IF EXISTS "notifications_status_check"`,
    `DO ${dollarQuote(`BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = ${quoteLiteral(table)}::regclass AND conname = 'notifications_check') THEN
    ALTER TABLE ${table} ADD ${NOTIFICATIONS_CHECK};
  END IF;
END`)}`,
    // Progress of `backfill()`, one row per channel: the last primary key enqueued (a jsonb object read
    // back with jsonb_populate_record into the key's own types), so a stopped or crashed run resumes.
    `CREATE TABLE IF NOT EXISTS ${backfills} (
  "channel" text PRIMARY KEY,
  "last_key" jsonb,
  "where_sql" text,
  "rows" bigint NOT NULL DEFAULT 0,
  "pages" bigint NOT NULL DEFAULT 0,
  "started_at" timestamptz NOT NULL DEFAULT now(),
  "updated_at" timestamptz NOT NULL DEFAULT now(),
  "finished_at" timestamptz
)`,
    ...packedStorageSql(schemaName),
  ];
}

/** Tag whose `hashtext` is the advisory lock class that serializes producers of one dedup key. */
export function dedupLockTag(schema: string): string {
  return `drizzle-pgpubsub dedup ${quoteIdent(schema)}`;
}

/**
 * `notify_many(channel, payloads jsonb array, options jsonb)`: stores many notifications in one call
 * and returns one row `(notification_id, outcome)` per payload, in order. Options (all optional):
 * `runAt` (timestamptz text), `delayMs`, `priority`, `keys` (a dedup key or null per payload) and
 * `onDuplicate` (`skip`, the default, or `replace`).
 *
 * Without keys it is one set-based INSERT. With keys, each keyed payload takes a transaction-level
 * advisory lock on (channel, key), so producers of one key run one after the other (and never wait
 * for a handler), then looks at the key's pending rows:
 * - none: insert the row with the key (`inserted`);
 * - `skip`: keep the newest one (`skipped`, its id);
 * - `replace`: update the newest one no listener holds (payload, run_at, priority, context; attempts
 *   reset) (`replaced`); if a listener holds all of them (their handlers run), insert a successor row
 *   with the key `key || U+0001 || uuid` (`inserted`), so the new payload is neither lost nor made to
 *   wait for the running handler. Producers and the unique index treat the successor as the key's.
 *
 * Wake-up: a row due now wakes sleeping listeners as `notify` does (empty payload). Rows all due later
 * NOTIFY `at:<ms>` (the delay) only when no pending row of the channel is due earlier than them:
 * a listener schedules a timer for it without claiming; an earlier due time it already knows
 * covers later ones (its probe after that claim reads `min(run_at)` again).
 */
function notifyManySql(schemaName: string): string {
  const table = notificationsRef(schemaName);
  const lockClass = `hashtext(${quoteLiteral(dedupLockTag(schemaName))})`;
  const family = `n."channel" = p_channel AND n."status" = 'pending' AND (n."dedup_key" = v_key OR (n."dedup_key" > v_key || chr(1) AND n."dedup_key" < v_key || chr(2)))`;
  return `CREATE OR REPLACE FUNCTION ${quoteIdent(schemaName)}."notify_many"("p_channel" text, "p_payloads" jsonb, "p_options" jsonb DEFAULT '{}'::jsonb)
RETURNS TABLE ("notification_id" bigint, "outcome" text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${dollarQuote(`DECLARE
  v_context jsonb := coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb);
  v_run_at timestamptz := coalesce((p_options->>'runAt')::timestamptz, now() + coalesce((p_options->>'delayMs')::float8, 0) * interval '1 millisecond');
  v_priority integer := coalesce((p_options->>'priority')::integer, 0);
  v_replace boolean := coalesce(p_options->>'onDuplicate', 'skip') = 'replace';
  v_keys jsonb := p_options->'keys';
  v_item record;
  v_key text;
  v_id bigint;
  v_count bigint := 0;
BEGIN
  IF jsonb_typeof(p_payloads) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'drizzle-pgpubsub notify_many: payloads must be a JSON array' USING ERRCODE = '22023';
  END IF;
  IF coalesce(p_options->>'onDuplicate', 'skip') NOT IN ('skip', 'replace') THEN
    RAISE EXCEPTION 'drizzle-pgpubsub notify_many: onDuplicate must be skip or replace' USING ERRCODE = '22023';
  END IF;
  IF v_keys IS NULL OR jsonb_typeof(v_keys) = 'null' THEN
    RETURN QUERY WITH ins AS (
      INSERT INTO ${table} ("channel", "payload", "context", "run_at", "priority")
      SELECT p_channel, e.value, v_context, v_run_at, v_priority
      FROM jsonb_array_elements(p_payloads) WITH ORDINALITY AS e(value, ord) ORDER BY e.ord
      RETURNING ${table}."id")
    SELECT ins."id", 'inserted'::text FROM ins ORDER BY ins."id";
    GET DIAGNOSTICS v_count = ROW_COUNT;
  ELSE
    FOR v_item IN SELECT e.value, e.ord FROM jsonb_array_elements(p_payloads) WITH ORDINALITY AS e(value, ord) ORDER BY e.ord LOOP
      v_key := v_keys->>(v_item.ord::integer - 1);
      v_id := NULL;
      IF v_key IS NULL THEN
        INSERT INTO ${table} ("channel", "payload", "context", "run_at", "priority")
        VALUES (p_channel, v_item.value, v_context, v_run_at, v_priority) RETURNING ${table}."id" INTO v_id;
        notification_id := v_id; outcome := 'inserted'; v_count := v_count + 1;
        RETURN NEXT;
        CONTINUE;
      END IF;
      IF strpos(v_key, chr(1)) > 0 THEN
        RAISE EXCEPTION 'drizzle-pgpubsub notify_many: a dedup key must not contain the character U+0001' USING ERRCODE = '22023';
      END IF;
      PERFORM pg_advisory_xact_lock(${lockClass}, hashtext(p_channel || chr(1) || v_key));
      IF v_replace THEN
        SELECT n."id" INTO v_id FROM ${table} n WHERE ${family} ORDER BY n."id" DESC LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF v_id IS NOT NULL THEN
          UPDATE ${table} SET "payload" = v_item.value, "run_at" = v_run_at, "priority" = v_priority,
            "context" = v_context, "attempts" = 0, "last_error" = NULL
          WHERE ${table}."id" = v_id;
          notification_id := v_id; outcome := 'replaced'; v_count := v_count + 1;
          RETURN NEXT;
          CONTINUE;
        END IF;
        -- Every pending row of the key is held by a listener (its handler runs): a successor.
        IF EXISTS (SELECT 1 FROM ${table} n WHERE ${family}) THEN
          v_key := v_key || chr(1) || gen_random_uuid()::text;
        END IF;
      ELSE
        SELECT n."id" INTO v_id FROM ${table} n WHERE ${family} ORDER BY n."id" DESC LIMIT 1;
        IF v_id IS NOT NULL THEN
          notification_id := v_id; outcome := 'skipped';
          RETURN NEXT;
          CONTINUE;
        END IF;
      END IF;
      INSERT INTO ${table} ("channel", "payload", "context", "run_at", "priority", "dedup_key")
      VALUES (p_channel, v_item.value, v_context, v_run_at, v_priority, v_key) RETURNING ${table}."id" INTO v_id;
      notification_id := v_id; outcome := 'inserted'; v_count := v_count + 1;
      RETURN NEXT;
    END LOOP;
  END IF;
  IF v_count > 0 AND ${wakeCondition('p_channel', schemaName)} THEN
    IF v_run_at <= now() THEN
      PERFORM pg_notify(p_channel, '');
    ELSIF NOT EXISTS (SELECT 1 FROM ${table} n WHERE n."channel" = p_channel AND n."status" = 'pending' AND n."run_at" > now() AND n."run_at" < v_run_at) THEN
      PERFORM pg_notify(p_channel, 'at:' || greatest(0, ceil(extract(epoch FROM v_run_at - clock_timestamp()) * 1000))::bigint::text);
    END IF;
  END IF;
END`)}`;
}
