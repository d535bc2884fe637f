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
} from 'drizzle-orm/pg-core';
import { dollarQuote, quoteIdent, quoteLiteral } from '../identifiers.ts';
import {
  BACKFILLS_TABLE,
  backfillsRef,
  NOTIFICATIONS_TABLE,
  notificationsRef,
  notifyFunctionRef,
  WAKE_SETTING,
  WAKEUPS_TABLE,
  wakeLockTag,
  wakeupsRef,
} from './sql-names.ts';

/** The pg schema that holds the notifications table unless configured otherwise. */
export const DEFAULT_SCHEMA = 'pgpubsub';

/** Version of the storage layout that {@link storageMigrationSql} creates. */
export const STORAGE_VERSION = 4;

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
    },
    (t) => [index('notifications_claim_idx').on(t.channel, t.runAt, t.id).where(sql`status = 'pending'`)],
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
  "op" text CONSTRAINT "notifications_op_check" CHECK ("op" IN ('insert', 'update', 'delete', 'snapshot', 'truncate')),
  "old" jsonb,
  "new" jsonb,
  "payload" jsonb,
  "context" jsonb NOT NULL DEFAULT '{}'::jsonb,
  "status" text NOT NULL DEFAULT 'pending' CHECK ("status" IN ('pending', 'failed')),
  "attempts" integer NOT NULL DEFAULT 0,
  "run_at" timestamptz NOT NULL DEFAULT now(),
  "created_at" timestamptz NOT NULL DEFAULT now(),
  "last_error" text,
  "failed_at" timestamptz
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
    // Storage version 4: `backfill()` writes 'snapshot' events and `on: ['truncate']` 'truncate' ones.
    // The CHECK is replaced by name (version 3 created it unnamed: PostgreSQL named it the same).
    `ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS "notifications_op_check"`,
    `ALTER TABLE ${table} ADD CONSTRAINT "notifications_op_check" CHECK ("op" IN ('insert', 'update', 'delete', 'snapshot', 'truncate'))`,
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
  ];
}
