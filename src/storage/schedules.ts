import { sql } from 'drizzle-orm';
import { integer, jsonb, pgSchema, text, timestamp } from 'drizzle-orm/pg-core';
import { quoteIdent, quoteLiteral } from '../identifiers.ts';
import { SCHEDULES_TABLE, schedulesRef } from './sql-names.ts';

/**
 * The schedules table: one row per declared `schedule()`, written by `generate`'s migrations. Its
 * `last_slot` is the exactly-once fence: a listener fires the slots after it and moves it forward in
 * the same transaction that stores their notifications, with a compare-and-set on its old value.
 */

/** A schedule as a migration installs it. */
export interface ScheduleSpec {
  name: string;
  cron: string;
  timezone: string;
  payload: unknown;
  catchUp: number;
}

/** The schedules table of a pg schema as a Drizzle table (typed queries; the storage test). */
export function schedulesTable(schemaName: string) {
  return pgSchema(schemaName).table(SCHEDULES_TABLE, {
    name: text('name').primaryKey(),
    cron: text('cron').notNull(),
    timezone: text('timezone').notNull(),
    payload: jsonb('payload').notNull(),
    catchUp: integer('catch_up').notNull(),
    lastSlot: timestamp('last_slot', { withTimezone: true })
      .notNull()
      .default(sql`date_trunc('second', now())`),
  });
}

/** DDL of the schedules table (storage version 4; idempotent). */
export function createSchedulesTableSql(schemaName: string): string {
  return `CREATE TABLE IF NOT EXISTS ${schedulesRef(schemaName)} (
  "name" text PRIMARY KEY,
  "cron" text NOT NULL,
  "timezone" text NOT NULL,
  "payload" jsonb NOT NULL,
  "catch_up" integer NOT NULL,
  "last_slot" timestamptz NOT NULL DEFAULT date_trunc('second', now())
)`;
}

/**
 * Installs or changes a schedule. A new schedule starts at the migration's time (no slot before it
 * fires); a changed one keeps its fence, moved up to the migration's time, so changing the cron
 * expression does not fire the slots the new expression would have had in the past.
 */
export function upsertScheduleSql(spec: ScheduleSpec, schemaName: string): string {
  const values = [
    quoteLiteral(spec.name),
    quoteLiteral(spec.cron),
    quoteLiteral(spec.timezone),
    `${quoteLiteral(JSON.stringify(spec.payload))}::jsonb`,
    String(spec.catchUp),
  ].join(', ');
  const t = schedulesRef(schemaName);
  const set = ['cron', 'timezone', 'payload', 'catch_up']
    .map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`)
    .join(', ');
  return `INSERT INTO ${t} ("name", "cron", "timezone", "payload", "catch_up") VALUES (${values})
ON CONFLICT ("name") DO UPDATE SET ${set}, "last_slot" = greatest(${t}."last_slot", EXCLUDED."last_slot")`;
}

/** Removes a schedule (its pending notifications stay and are handled or purged like any other). */
export function deleteScheduleSql(name: string, schemaName: string): string {
  return `DELETE FROM ${schedulesRef(schemaName)} WHERE "name" = ${quoteLiteral(name)}`;
}
