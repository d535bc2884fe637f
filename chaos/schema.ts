import { bigint, bigserial, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import * as v from 'valibot';
import {
  channel,
  createTriggerSql,
  resolveTriggerSpec,
  storageMigrationSql,
  triggerChannel,
} from '../src/index.ts';
import { hash32 } from './prng.ts';

/** Rows the producers insert, update and delete; every write stamps a fresh `tag`. */
export const items = pgTable('chaos_items', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  tag: text('tag').notNull(),
  producer: integer('producer').notNull(),
  v: integer('v').notNull().default(0),
  big: bigint('big', { mode: 'bigint' }).notNull(),
  meta: jsonb('meta').$type<{ n: number; s: string }>().notNull(),
});

/**
 * What handlers did, one row per handler run that committed. Deliberately no unique constraint:
 * a duplicate delivery must show up as a second row, not as an error that hides it.
 */
export const effects = pgTable('chaos_effects', {
  notificationId: bigint('notification_id', { mode: 'bigint' }).notNull(),
  key: text('key').notNull(),
  ctxTx: text('ctx_tx'),
  worker: integer('worker').notNull(),
  pid: integer('pid').notNull(),
  attempt: integer('attempt').notNull(),
  at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
});

export const itemEvents = triggerChannel(items, { on: ['insert', 'update', 'delete'], name: 'chaos_items' });
export const jobs = channel('chaos_jobs', v.object({ tag: v.string(), n: v.number(), pad: v.string() }));

/** Tables, storage and triggers of a chaos database. */
export function chaosSetupSql(): string[] {
  return [
    ...storageMigrationSql(),
    `CREATE TABLE chaos_items (id bigserial PRIMARY KEY, tag text NOT NULL, producer integer NOT NULL,
      v integer NOT NULL DEFAULT 0, big bigint NOT NULL, meta jsonb NOT NULL)`,
    `CREATE TABLE chaos_effects (notification_id bigint NOT NULL, key text NOT NULL, ctx_tx text,
      worker integer NOT NULL, pid integer NOT NULL, attempt integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    // The producer's own marker row, written last in each producer transaction: the ground truth of
    // "did this transaction commit" when the connection dropped during COMMIT. `keys` lists the
    // notifications the transaction produced.
    `CREATE TABLE chaos_markers (tx text PRIMARY KEY, keys jsonb NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    ...createTriggerSql(resolveTriggerSpec(itemEvents)),
  ];
}

/** The identity of a notification as the producer knows it: op letter and the tag of the write. */
export function itemKey(op: 'insert' | 'update' | 'delete', tag: string): string {
  return `${op[0]}:${tag}`;
}

export function jobKey(tag: string): string {
  return `c:${tag}`;
}

/** About 2% of notifications fail their first attempt on purpose: retries must not duplicate effects. */
export function failsFirstAttempt(key: string): boolean {
  return hash32(`fail:${key}`) % 50 === 0;
}

/** About 1 in 8 handlers takes a few ms, so kills and cuts often land inside open claim transactions. */
export function handlerDelayMs(key: string): number {
  const h = hash32(`slow:${key}`);
  return h % 8 === 0 ? 2 + (h % 23) : 0;
}
