import { integer, numeric, pgTable, primaryKey, serial, text, timestamp } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import { describe, expect, it } from 'vitest';
import { backfill, createListener, isPgPubSubError, triggerChannel } from '../src/index.ts';
import { installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { POSTGRES_JS_MAJOR } from './support/driver-version.ts';
import { waitFor } from './support/wait-for.ts';

const items = pgTable('items', {
  id: serial().primaryKey(),
  name: text().notNull(),
  amount: numeric().notNull(),
  at: timestamp({ withTimezone: true }).notNull(),
  qty: integer().notNull(),
});
const lines = pgTable(
  'lines',
  { orderId: text('order_id').notNull(), lineNo: integer('line_no').notNull(), sku: text().notNull() },
  (t) => [primaryKey({ columns: [t.orderId, t.lineNo] })],
);
const keyless = pgTable('keyless', { id: integer(), name: text() });
const notInstalled = pgTable('not_installed', { id: serial().primaryKey() });

const itemEvents = triggerChannel(items, { on: ['insert', 'update', 'delete'] });
const lineEvents = triggerChannel(lines, { on: ['insert'] });
const keylessEvents = triggerChannel(keyless, { on: ['insert'], name: 'keyless' });
const notInstalledEvents = triggerChannel(notInstalled, { on: ['insert'] });

const t = useTestDatabase([
  `CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, amount numeric NOT NULL, at timestamptz NOT NULL, qty integer NOT NULL)`,
  `INSERT INTO items (name, amount, at, qty) SELECT 'item ' || g, (g * 1.5)::numeric, timestamptz '2026-01-01 12:00:00+00' + g * interval '1 hour', g FROM generate_series(1, 250) g`,
  `CREATE TABLE lines (order_id text NOT NULL, line_no integer NOT NULL, sku text NOT NULL, PRIMARY KEY (order_id, line_no))`,
  `INSERT INTO lines SELECT 'o' || (g / 7), g % 7, 'sku' || g FROM generate_series(1, 100) g`,
  `CREATE TABLE keyless (id integer, name text)`,
  `CREATE TABLE not_installed (id serial PRIMARY KEY)`,
]);

const snapshots = async (channel: string) =>
  (
    await t.sql`SELECT new FROM pgpubsub.notifications WHERE channel = ${channel} AND op = 'snapshot' ORDER BY id`
  ).map((r) => r.new as Record<string, unknown>);

async function clear() {
  await t.sql`DELETE FROM pgpubsub.notifications`;
  await t.sql`DELETE FROM pgpubsub.backfills`;
}

describe('backfill()', () => {
  it('writes one snapshot per row, in key order, with the image the trigger stores (whatever the session settings)', async () => {
    await clear();
    await installChannels(t.sql, [itemEvents]);
    // A session with other date, time zone and float settings: images must not depend on it.
    const odd = t.client({
      max: 2,
      connection: {
        DateStyle: 'German, DMY',
        TimeZone: 'Asia/Tokyo',
        extra_float_digits: '-3',
        IntervalStyle: 'sql_standard',
      },
    });
    const result = await backfill(drizzle({ client: odd }), itemEvents, { batchSize: 40 });
    expect(result).toMatchObject({
      channel: 'items',
      rows: 250,
      pages: 7,
      totalRows: 250,
      resumed: false,
      finished: true,
    });
    const images = await snapshots('items');
    expect(images.map((i) => i.id)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    // The trigger's own image of every row: touch each row, read the update events' `new`.
    await t.sql`UPDATE items SET qty = qty`;
    const fromTrigger = (
      await t.sql`SELECT new FROM pgpubsub.notifications WHERE channel = 'items' AND op = 'update' ORDER BY (new->>'id')::int`
    ).map((r) => r.new);
    expect(images).toEqual(fromTrigger);
    const [progress] =
      await t.sql`SELECT last_key, rows::int, pages::int, finished_at IS NOT NULL AS finished FROM pgpubsub.backfills`;
    expect(progress).toEqual({ last_key: { id: 250 }, rows: 250, pages: 7, finished: true });
  });

  it('hands snapshots to the handler decoded like any event', async () => {
    await clear();
    await installChannels(t.sql, [itemEvents]);
    await backfill(t.db, itemEvents, { where: 'id <= 3', context: { reason: 'reindex' } });
    const seen: unknown[] = [];
    await createListener(t.db)
      .on(itemEvents, (event) => {
        if (event.op === 'snapshot') seen.push({ old: event.old, new: event.new, context: event.context });
      })
      .drain();
    expect(seen).toEqual(
      [1, 2, 3].map((id) => ({
        old: null,
        new: {
          id,
          name: `item ${id}`,
          amount: (id * 1.5).toFixed(1),
          at: new Date(Date.UTC(2026, 0, 1, 12 + id)),
          qty: id,
        },
        context: { reason: 'reindex' },
      })),
    );
  });

  it('pages composite keys, filters with where, and resumes after a stop without duplicates or gaps', async () => {
    await clear();
    await installChannels(t.sql, [lineEvents]);
    const first = await backfill(t.db, lineEvents, { batchSize: 9, maxPages: 3, where: "sku <> 'sku5'" });
    expect(first).toMatchObject({ rows: 27, pages: 3, totalRows: 27, resumed: false, finished: false });
    // A resumed run must use the same condition.
    const conflict = await backfill(t.db, lineEvents, { batchSize: 9 }).catch((e) => e);
    expect(isPgPubSubError(conflict, 'BACKFILL_CONFLICT')).toBe(true);
    expect(conflict.message).toMatch(/Pass the same condition to resume, or `restart: true`/);
    const progress: number[] = [];
    const rest = await backfill(t.db, lineEvents, {
      batchSize: 9,
      where: "sku <> 'sku5'",
      onProgress: (p) => progress.push(p.total - p.rows),
    });
    expect(rest).toMatchObject({ rows: 72, totalRows: 99, resumed: true, finished: true });
    expect(progress.at(-1)).toBe(0);
    const keys = (await snapshots('lines')).map((i) => `${i.order_id}/${i.line_no}`);
    const expected = (
      await t.sql`SELECT order_id || '/' || line_no AS k FROM lines WHERE sku <> 'sku5' ORDER BY order_id, line_no`
    ).map((r) => r.k);
    expect(keys).toEqual(expected);
    // Finished: the next call starts over; `restart` discards an unfinished run.
    const again = await backfill(t.db, lineEvents, { batchSize: 50, maxPages: 1 });
    expect(again).toMatchObject({ rows: 50, resumed: false, finished: false });
    const restarted = await backfill(t.db, lineEvents, { restart: true });
    expect(restarted).toMatchObject({ rows: 100, totalRows: 100, resumed: false, finished: true });
  });

  // postgres.js 3 may crash this process when the backend is killed under it (porsager/postgres#1154).
  it.skipIf(POSTGRES_JS_MAJOR < 4)(
    'resumes after the process died mid-page: the uncommitted page is redone, committed pages are not',
    async () => {
      await clear();
      await installChannels(t.sql, [lineEvents]);
      await backfill(t.db, lineEvents, { batchSize: 10, maxPages: 2 });
      // A crash inside the third page: its transaction never commits. The page waits on a row lock
      // held here (FOR UPDATE conflicts with the page's FOR SHARE), and its backend is killed there.
      const blocker = t.client({ max: 1 });
      const victim = t.client({ max: 1 });
      const pid = (await victim`SELECT pg_backend_pid() AS pid`)[0]?.pid as number;
      const pages: number[] = [];
      let dying: Promise<unknown> = Promise.resolve();
      await blocker.begin(async (tx) => {
        await tx`SELECT 1 FROM lines ORDER BY order_id, line_no OFFSET 24 LIMIT 1 FOR UPDATE`;
        dying = backfill(drizzle({ client: victim }), lineEvents, {
          batchSize: 10,
          onProgress: (p) => pages.push(p.pages),
        }).catch((error: unknown) => error);
        await waitFor(
          async () => {
            const [w] = await t.sql`SELECT wait_event_type FROM pg_stat_activity WHERE pid = ${pid}`;
            return w?.wait_event_type === 'Lock';
          },
          { timeoutMs: 30_000, what: 'the backfill page to wait for the row lock' },
        );
        await t.sql`SELECT pg_terminate_backend(${pid})`;
      });
      expect(await dying).toBeInstanceOf(Error);
      expect(pages).toEqual([]);
      const result = await backfill(t.db, lineEvents, { batchSize: 10 });
      expect(result).toMatchObject({ rows: 80, totalRows: 100, resumed: true, finished: true });
      const keys = (await snapshots('lines')).map((i) => `${i.order_id}/${i.line_no}`);
      expect(new Set(keys).size).toBe(100);
      expect(keys).toHaveLength(100);
    },
  );

  it('refuses clearly: no trigger installed, no primary key, a transaction, not a trigger channel, bad options', async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (e) => (isPgPubSubError(e) ? `${e.code}: ${e.message}` : String(e)),
      );
    expect(await code(backfill(t.db, notInstalledEvents))).toMatch(
      /^CHANNEL_NOT_INSTALLED: Channel "not_installed" has no trigger in the database.*drizzle-pgpubsub generate/,
    );
    await installChannels(t.sql, [keylessEvents]).catch(() => {});
    await t.sql.unsafe(
      `CREATE OR REPLACE FUNCTION pgpubsub.ch_keyless() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'`,
    );
    expect(await code(backfill(t.db, keylessEvents))).toMatch(
      /^NO_PRIMARY_KEY: Table "public"."keyless" has no primary key/,
    );
    await t.db.transaction(async (tx) => {
      expect(await code(backfill(tx as never, itemEvents))).toMatch(
        /^INVALID_OPTIONS: .*pass the database \(`db`\), not `tx`/,
      );
    });
    expect(await code(backfill(t.db, { kind: 'custom' } as never))).toMatch(/^INVALID_CHANNEL/);
    expect(await code(backfill(t.db, itemEvents, { batchSize: 0 }))).toMatch(/^INVALID_OPTIONS: .*batchSize/);
    expect(await code(backfill(t.db, itemEvents, { schema: 'nowhere' }))).toMatch(/^TABLE_MISSING/);
    await t.sql`ALTER TABLE pgpubsub.backfills RENAME TO backfills_gone`;
    try {
      expect(await code(backfill(t.db, itemEvents))).toMatch(/^STORAGE_OUTDATED: .*generate/);
    } finally {
      await t.sql`ALTER TABLE pgpubsub.backfills_gone RENAME TO backfills`;
    }
    // Nothing was written by the refused calls.
    expect(
      await t.sql`SELECT 1 FROM pgpubsub.backfills WHERE channel IN ('keyless', 'not_installed')`,
    ).toHaveLength(0);
  });
});
