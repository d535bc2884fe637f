/**
 * Decoding under hostile schemas (issue 14): tables outside `public` read by a least-privilege
 * listener (item 15), extension types (item 13) and tables at PostgreSQL's column limit (item 12).
 * Every decoded image must equal what `db.select()` returns.
 */
import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { bigint, customType, integer, pgSchema, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggerChannel } from '../src/channel.ts';
import { createListener } from '../src/runtime/listener.ts';
import { countNotifications, installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';

const t = useTestDatabase();

const suffix = randomBytes(3).toString('hex');
const LISTENER = `pgpubsub_declisten_${suffix}`;
const PASSWORD = 'pw-not-secret';
/** A Drizzle database on the test driver (PGPUBSUB_TEST_DRIVER), logged in as `role`. */
function connectAs(role: string) {
  const url = new URL(t.url);
  url.username = role;
  url.password = PASSWORD;
  return t.drizzle(4, {}, url.toString());
}

/** A column type the driver hands over as text, as `db.select()` does for extension types. */
const textType = (name: string) =>
  customType<{ data: string; driverData: string }>({ dataType: () => name })();

const shop = pgSchema('shop');
const shopOrders = shop.table('orders', { id: serial().primaryKey(), item: text().notNull() });
const shopEvents = triggerChannel(shopOrders, { name: 'shop_orders', on: ['insert', 'update', 'delete'] });

beforeAll(async () => {
  await t.sql.unsafe(`CREATE ROLE ${LISTENER} LOGIN PASSWORD '${PASSWORD}' NOSUPERUSER`);
  // The listener grants of docs/security.md, minus USAGE on the watched table's schema.
  for (const statement of [
    'CREATE SCHEMA shop',
    'CREATE TABLE shop.orders (id serial PRIMARY KEY, item text NOT NULL)',
    `GRANT USAGE ON SCHEMA pgpubsub TO ${LISTENER}`,
    `GRANT SELECT, UPDATE, DELETE ON pgpubsub.notifications TO ${LISTENER}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON pgpubsub.wakeups TO ${LISTENER}`,
    `GRANT SELECT ON pgpubsub.packed TO ${LISTENER}`,
    `GRANT EXECUTE ON FUNCTION pgpubsub.expand_packed(text, jsonb) TO ${LISTENER}`,
  ]) {
    await t.sql.unsafe(statement);
  }
});

afterAll(async () => {
  await t.sql.unsafe(`DROP OWNED BY ${LISTENER} CASCADE`);
  await t.sql.unsafe(`DROP ROLE ${LISTENER}`);
});

describe('a table outside public, read by the least-privilege listener (item 15)', () => {
  it('never dead-letters on a missing grant: the claim fails with an error naming the grant, and succeeds once it is given', async () => {
    await installChannels(t.sql, [shopEvents]);
    await t.sql`INSERT INTO shop.orders (item) VALUES ('book')`;
    const db = connectAs(LISTENER);
    const listener = createListener(db).on(shopEvents, () => {});
    await expect(listener.drain()).rejects.toThrow(/GRANT USAGE ON SCHEMA "shop" TO/);
    expect(await countNotifications(t.sql, 'shop_orders')).toEqual({ pending: 1, failed: 0 });
    const [row] = await t.sql`SELECT attempts FROM pgpubsub.notifications WHERE channel = 'shop_orders'`;
    expect(row!.attempts).toBe(0);

    await t.sql.unsafe(`GRANT USAGE ON SCHEMA shop TO ${LISTENER}`);
    const events: any[] = [];
    const summary = await createListener(db)
      .on(shopEvents, (e) => void events.push(e))
      .drain();
    expect(summary).toMatchObject({ processed: 1, dead: 0 });
    expect(events[0].new).toEqual({ id: 1, item: 'book' });
  });
});

/** Extension types and sample values, as `CREATE EXTENSION` makes them available. */
const EXTENSIONS: { ext: string; type: string; values: string[] }[] = [
  {
    ext: 'hstore',
    type: 'hstore',
    values: [`a=>1, "b c"=>NULL, "q\\"uote"=>"x\\\\y", ""=>"empty", "ü"=>"✓"`, '', 'k=>v'],
  },
  { ext: 'citext', type: 'citext', values: ['MiXeD Case', '', "it's"] },
  { ext: 'ltree', type: 'ltree', values: ['top.science.astronomy', '', 'a'] },
  { ext: 'cube', type: 'cube', values: ['(1, 2, 3)', '(1.5),(2.5)', '(0)'] },
  { ext: 'vector', type: 'vector(3)', values: ['[1,2,3]', '[0.5,-1,1e-7]', '[0,0,0]'] },
];

describe('extension types (item 13)', () => {
  for (const { ext, type, values } of EXTENSIONS) {
    it(`decodes ${ext} exactly as db.select() returns it (skipped when the extension is not installed on the server)`, async (test) => {
      const [available] = await t.sql`SELECT 1 AS ok FROM pg_available_extensions WHERE name = ${ext}`;
      if (!available) {
        test.skip(`extension ${ext} is not available on this server`);
        return;
      }
      await t.sql.unsafe(`CREATE EXTENSION IF NOT EXISTS ${ext}`);
      const name = `ext_${ext}`;
      await t.sql.unsafe(`CREATE TABLE ${name} (id serial PRIMARY KEY, v ${type}, vs ${type}[])`);
      const table = pgTable(name, {
        id: serial().primaryKey(),
        v: textType(type),
        vs: textType(`${type}[]`),
      });
      const events: any[] = [];
      const ch = triggerChannel(table, { on: ['insert', 'update', 'delete'] });
      await installChannels(t.sql, [ch]);
      const db = t.db;
      for (const value of values) {
        await t.sql.unsafe(`INSERT INTO ${name} (v, vs) VALUES ($1, ARRAY[$1, NULL]::${type}[])`, [value]);
      }
      const inserted = await db.select().from(table).orderBy(table.id);
      await t.sql.unsafe(`UPDATE ${name} SET v = $1 WHERE id = 1`, [values[2]!]);
      const [updated] = await db.select().from(table).where(eq(table.id, 1));
      await t.sql.unsafe(`DELETE FROM ${name} WHERE id = 1`);
      const summary = await createListener(db)
        .on(ch, (e) => void events.push(e))
        .drain();
      expect(summary).toMatchObject({ processed: values.length + 2, dead: 0 });
      expect(events.slice(0, values.length).map((e) => e.new)).toEqual(inserted);
      expect(events[values.length].old).toEqual(inserted[0]);
      expect(events[values.length].new).toEqual(updated);
      expect(events[values.length + 1].old).toEqual(updated);
    });
  }
});

const WIDTH = 1600;
/** `id` plus 1,599 columns of three types: PostgreSQL's column limit. */
function wideColumns(): Record<string, any> {
  const columns: Record<string, any> = { id: serial().primaryKey() };
  for (let i = 1; i < WIDTH; i++) {
    const name = `c${i}`;
    columns[name] = i % 3 === 0 ? text(name) : i % 3 === 1 ? integer(name) : bigint(name, { mode: 'bigint' });
  }
  return columns;
}
// 1,600 columns built in a loop have no static type.
const wide: any = pgTable('wide', wideColumns());
const wideEvents = triggerChannel(wide, { on: ['insert', 'update', 'delete'] });

describe('wide tables (item 12)', () => {
  it(`decodes insert, update and delete of a table with ${WIDTH} columns, in a batch and one at a time`, async () => {
    const defs = ['id serial PRIMARY KEY'];
    for (let i = 1; i < WIDTH; i++)
      defs.push(`c${i} ${i % 3 === 0 ? 'text' : i % 3 === 1 ? 'integer' : 'bigint'}`);
    await t.sql.unsafe(`CREATE TABLE wide (${defs.join(', ')})`);
    await installChannels(t.sql, [wideEvents]);
    const db = t.db;
    // Sparse values: a row of 1,600 non-null columns would not fit a heap page.
    const values = (seed: number) => {
      const row: Record<string, unknown> = {};
      for (let i = 1; i < WIDTH; i += 9) {
        const key = `c${(i + seed) % (WIDTH - 1) || 1}`;
        const n = (i + seed) % (WIDTH - 1) || 1;
        row[key] =
          n % 3 === 0 ? `v${seed}'"${i}` : n % 3 === 1 ? i * seed : BigInt(i) * 10n ** 15n + BigInt(seed);
      }
      return row;
    };
    await db.insert(wide).values([values(1), values(2), values(3)]);
    const inserted = await db.select().from(wide).orderBy(wide.id);
    await db.update(wide).set(values(5)).where(eq(wide.id, 1));
    const [updated] = await db.select().from(wide).where(eq(wide.id, 1));
    await db.delete(wide).where(eq(wide.id, 1));
    const events: any[] = [];
    const summary = await createListener(db)
      .on(wideEvents, (e) => void events.push(e))
      .drain();
    expect(summary).toMatchObject({ processed: 5, dead: 0 });
    expect(events.map((e) => e.op)).toEqual(['insert', 'insert', 'insert', 'update', 'delete']);
    expect(events.slice(0, 3).map((e) => e.new)).toEqual(inserted);
    expect(events[3].old).toEqual(inserted[0]);
    expect(events[3].new).toEqual(updated);
    expect(events[4].old).toEqual(updated);
    expect(events[4].new).toBeNull();

    // One at a time (the fallback after a failed batch): a hand-written image that cannot decode
    // becomes a dead letter, and the healthy events around it still decode.
    await db.insert(wide).values(values(7));
    await t.sql`INSERT INTO pgpubsub.notifications (channel, op, new) VALUES ('wide', 'insert', '{"c1": "not a number"}')`;
    await db.insert(wide).values(values(8));
    const later = await db.select().from(wide).where(eq(wide.id, 4));
    const late = await db.select().from(wide).where(eq(wide.id, 5));
    const more: any[] = [];
    const second = await createListener(db)
      .on(wideEvents, (e) => void more.push(e))
      .drain();
    expect(second).toMatchObject({ processed: 2, dead: 1 });
    expect(more.map((e) => e.new)).toEqual([...later, ...late]);
    expect(await countNotifications(t.sql, 'wide')).toEqual({ pending: 0, failed: 1 });
  });
});
