import { integer, pgSchema, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { triggerChannel } from '../src/channel.ts';
import { isPgPubSubError } from '../src/errors.ts';
import { createTriggerSql, dropTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { useTestDatabase } from './support/db.ts';

const app = pgSchema('Odd Schema');
const items = pgTable('items', {
  id: serial().primaryKey(),
  name: text().notNull(),
  qty: integer().notNull(),
});
const contextItems = pgTable('context_items', { id: serial().primaryKey(), name: text().notNull() });
const bigItems = pgTable('big_items', { id: serial().primaryKey(), name: text().notNull() });
const weird = app.table('We"ird Table', {
  id: serial('Id').primaryKey(),
  label: text('Label "quoted"').notNull(),
  status: text().notNull(),
});

const t = useTestDatabase([
  'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, qty integer NOT NULL)',
  'CREATE TABLE context_items (id serial PRIMARY KEY, name text NOT NULL)',
  'CREATE TABLE big_items (id serial PRIMARY KEY, name text NOT NULL)',
  'CREATE SCHEMA "Odd Schema"',
  'CREATE TABLE "Odd Schema"."We""ird Table" ("Id" serial PRIMARY KEY, "Label ""quoted""" text NOT NULL, status text NOT NULL)',
]);

async function install(sqls: string[]) {
  for (const s of sqls) await t.sql.unsafe(s);
}
/** Installs the channel's trigger, runs `body`, and drops the trigger again. */
async function withTrigger(ch: Parameters<typeof resolveTriggerSpec>[0], body: () => Promise<void>) {
  const spec = resolveTriggerSpec(ch);
  await install(createTriggerSql(spec));
  try {
    await body();
  } finally {
    await install(dropTriggerSql(spec));
  }
}
const rows = (channel: string) =>
  t.sql`SELECT op, old, new, context FROM pgpubsub.notifications WHERE channel = ${channel} ORDER BY id`;

// Each test has its own table and channel and drops its trigger: no test depends on another.
describe('trigger SQL', () => {
  it('records insert, update and delete row images', async () => {
    const ch = triggerChannel(items, { on: ['insert', 'update', 'delete'] });
    await withTrigger(ch, async () => {
      await t.sql`INSERT INTO items (name, qty) VALUES ('a', 1), ('b', 2)`;
      await t.sql`UPDATE items SET qty = qty + 10 WHERE name = 'a'`;
      await t.sql`DELETE FROM items WHERE name = 'b'`;
    });
    expect(await rows('items')).toEqual([
      { op: 'insert', old: null, new: { id: 1, name: 'a', qty: 1 }, context: {} },
      { op: 'insert', old: null, new: { id: 2, name: 'b', qty: 2 }, context: {} },
      { op: 'update', old: { id: 1, name: 'a', qty: 1 }, new: { id: 1, name: 'a', qty: 11 }, context: {} },
      { op: 'delete', old: { id: 2, name: 'b', qty: 2 }, new: null, context: {} },
    ]);
    // The trigger is dropped: writes record nothing any more.
    await t.sql`INSERT INTO items (name, qty) VALUES ('c', 3)`;
    expect(await rows('items')).toHaveLength(4);
  });

  it('quotes odd identifiers and honours columns and when', async () => {
    const ch = triggerChannel(weird, {
      on: ['insert', 'update'],
      name: 'weird events',
      columns: ['status'],
      when: `NEW.status <> 'hidden'`,
    });
    await withTrigger(ch, async () => {
      await t.sql`INSERT INTO "Odd Schema"."We""ird Table" ("Label ""quoted""", status) VALUES ('x', 'new'), ('y', 'hidden')`;
      await t.sql`UPDATE "Odd Schema"."We""ird Table" SET "Label ""quoted""" = 'x2'`;
      await t.sql`UPDATE "Odd Schema"."We""ird Table" SET status = 'done' WHERE "Id" = 1`;
    });
    const got = await rows('weird events');
    expect(got.map((r) => [r.op, r.new?.status])).toEqual([
      ['insert', 'new'],
      ['update', 'done'],
    ]);
    expect(got[0]!.new).toEqual({ Id: 1, 'Label "quoted"': 'x', status: 'new' });
  });

  it('stores the transaction context and nothing for rolled-back writes', async () => {
    const ch = triggerChannel(contextItems, { on: ['insert'], name: 'context items' });
    await withTrigger(ch, async () => {
      await t.sql.begin(async (tx) => {
        await tx`SELECT set_config('pgpubsub.context', ${JSON.stringify({ tenant: 't1' })}, true)`;
        await tx`INSERT INTO context_items (name) VALUES ('ctx')`;
      });
      await t.sql
        .begin(async (tx) => {
          await tx`INSERT INTO context_items (name) VALUES ('rolled back')`;
          throw new Error('rollback');
        })
        .catch(() => {});
    });
    const got = await rows('context items');
    expect(got.map((r) => [r.new.name, r.context])).toEqual([['ctx', { tenant: 't1' }]]);
  });

  it('stores a 1 MB row image without touching the NOTIFY limit', async () => {
    const ch = triggerChannel(bigItems, { on: ['insert'], name: 'big items' });
    // A live idle listener: its flag, and its session's lock (so the trigger does NOTIFY).
    const session = await t.sql.reserve();
    await session`SELECT pg_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 1)`;
    await t.sql`INSERT INTO pgpubsub.wakeups (channel, key, idle) VALUES ('big items', 1, true)`;
    const big = 'x'.repeat(1_000_000);
    try {
      await withTrigger(ch, async () => {
        await t.sql`INSERT INTO big_items (name) VALUES (${big})`;
      });
    } finally {
      await session`SELECT pg_advisory_unlock_all()`;
      session.release();
    }
    const [row] =
      await t.sql`SELECT length(new->>'name') AS len FROM pgpubsub.notifications WHERE channel = 'big items'`;
    expect(row!.len).toBe(1_000_000);
  });

  it('refuses a table without a primary key', () => {
    const keyless = pgTable('keyless', { name: text() });
    try {
      resolveTriggerSpec(triggerChannel(keyless, { on: ['insert'] }));
      expect.unreachable();
    } catch (error) {
      expect(isPgPubSubError(error, 'NO_PRIMARY_KEY')).toBe(true);
      expect((error as Error).message).toContain('has no primary key');
    }
  });
});
