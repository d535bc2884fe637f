import { sql } from 'drizzle-orm';
import { bigint, boolean, index, integer, jsonb, pgSchema, text, timestamp } from 'drizzle-orm/pg-core';
import { dollarQuote, quoteIdent } from '../identifiers.ts';
import {
  NOTIFICATIONS_TABLE,
  notificationsRef,
  notifyFunctionRef,
  WAKEUPS_TABLE,
  wakeupsRef,
} from './sql-names.ts';

/** The pg schema that holds the notifications table unless configured otherwise. */
export const DEFAULT_SCHEMA = 'pgpubsub';

/** Version of the storage layout that {@link storageMigrationSql} creates. */
export const STORAGE_VERSION = 2;

/**
 * Whether a producer must NOTIFY: some listener of the channel is idle. The flag is read after the
 * notification row is written (so the producer already has its transaction id: see runtime/idle.ts). A
 * REPEATABLE READ or SERIALIZABLE transaction reads it in a snapshot that may predate the listener
 * going idle, so it always NOTIFYs.
 */
export function wakeCondition(channel: string, schemaName: string): string {
  return `(current_setting('transaction_isolation') <> 'read committed' OR EXISTS (SELECT 1 FROM ${wakeupsRef(schemaName)} w WHERE w."channel" = ${channel} AND w."idle"))`;
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
      op: text('op').$type<'insert' | 'update' | 'delete'>(),
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
  const wakeups = schema.table(WAKEUPS_TABLE, {
    channel: text('channel').primaryKey(),
    idle: boolean('idle').notNull(),
  });
  return { notifications, wakeups };
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
  return [
    `CREATE SCHEMA IF NOT EXISTS ${s}`,
    `CREATE TABLE IF NOT EXISTS ${table} (
  "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "channel" text NOT NULL,
  "op" text CHECK ("op" IN ('insert', 'update', 'delete')),
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
    // One flag per channel: true while some listener sleeps and needs a NOTIFY. Producers only read it,
    // so busy listeners cost the write path no NOTIFY (NOTIFY serializes commits on a global lock).
    `CREATE UNLOGGED TABLE IF NOT EXISTS ${wakeupsRef(schemaName)} ("channel" text PRIMARY KEY, "idle" boolean NOT NULL)`,
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
  ];
}
