/**
 * Backfill into an ordered channel (docs/sync.md#order): snapshots carry the ordering key the trigger
 * gives live events of the same row, so they take part in the row's order, and a consumer that applies
 * plain upserts (no "skip older" check) ends equal to the table while writers change rows during the
 * backfill, with two listeners competing.
 */
import { sql } from 'drizzle-orm';
import {
  doublePrecision,
  integer,
  numeric,
  pgTable,
  primaryKey,
  serial,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import { describe, expect, it } from 'vitest';
import { backfill, createListener, type Listener, triggerChannel } from '../src/index.ts';
import { installChannels } from './support/channels.ts';
import { closeDb, useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

// A key whose text depends on session settings unless written under the trigger's own (TimeZone,
// extra_float_digits): text with a quote and non-ASCII, a timestamptz, a numeric and a float.
const marks = pgTable(
  'marks',
  {
    label: text().notNull(),
    at: timestamp({ withTimezone: true }).notNull(),
    amount: numeric().notNull(),
    ratio: doublePrecision().notNull(),
    v: integer().notNull(),
  },
  (t) => [primaryKey({ columns: [t.label, t.at, t.amount, t.ratio] })],
);
const markEvents = triggerChannel(marks, { on: ['insert', 'update', 'delete'], ordered: true });

const ROWS = 4000;
const docs = pgTable('odocs', {
  id: serial().primaryKey(),
  title: text().notNull(),
  version: integer().notNull(),
});
const docEvents = triggerChannel(docs, { on: ['insert', 'update', 'delete'], ordered: true });

const t = useTestDatabase([
  'CREATE TABLE marks (label text NOT NULL, at timestamptz NOT NULL, amount numeric NOT NULL, ratio double precision NOT NULL, v integer NOT NULL, PRIMARY KEY (label, at, amount, ratio))',
  'CREATE TABLE odocs (id serial PRIMARY KEY, title text NOT NULL, version integer NOT NULL)',
  `INSERT INTO odocs (title, version) SELECT 'doc ' || g, 1 FROM generate_series(1, ${ROWS}) g`,
  // The consumer's copy: plain upserts and deletes, as docs/sync.md says an ordered channel allows.
  'CREATE TABLE odocs_copy (id integer PRIMARY KEY, title text NOT NULL, version integer NOT NULL)',
  // Every event the consumer applied, in the order it committed them.
  'CREATE TABLE applied (seq bigserial PRIMARY KEY, event bigint NOT NULL, doc integer NOT NULL, op text NOT NULL, version integer NOT NULL, listener text NOT NULL)',
]);

describe('backfill into an ordered channel', () => {
  it('writes each snapshot with the ordering key of the live events of its row (under any session settings)', async () => {
    await installChannels(t.sql, [markEvents]);
    // Live events, written under other session settings than the trigger's: statement-level inserts
    // (key from the image), row-level updates (key from NEW) and deletes (from OLD).
    const odd = t.client({
      max: 2,
      connection: { TimeZone: 'Asia/Tokyo', extra_float_digits: '-3', DateStyle: 'German, DMY' },
    });
    await odd`INSERT INTO marks SELECT 'it''s ' || g || ' é', timestamptz '2026-01-01 00:00:00.123456+02' + g * interval '1 day', g * 1.10, g / 3.0, 0 FROM generate_series(1, 30) g`;
    await odd`UPDATE marks SET v = v + 1`;
    await odd`DELETE FROM marks WHERE v = 1 AND amount > 30`;
    const result = await backfill(drizzle({ client: odd }), markEvents, { batchSize: 7 });
    expect(result).toMatchObject({ rows: 27, finished: true });
    // The backfill analyzed the notifications table after its first page and at its end, so claims
    // of the snapshots are planned for what it holds (docs/sync.md#how-fast): 90 events now.
    const [stats] =
      await t.sql`SELECT reltuples::int AS n FROM pg_class WHERE oid = 'pgpubsub.notifications'::regclass`;
    expect(stats?.n).toBe(90);
    await odd`UPDATE marks SET v = v + 1 WHERE amount < 5.5`;
    const rows = await t.sql`SELECT op, ordering_key,
        jsonb_build_object('label', coalesce(new, old)->'label', 'at', coalesce(new, old)->'at', 'amount', coalesce(new, old)->'amount', 'ratio', coalesce(new, old)->'ratio')::text AS pk
      FROM pgpubsub.notifications WHERE channel = 'marks' ORDER BY id`;
    const byRow = new Map<string, { ops: string[]; keys: Set<string> }>();
    for (const r of rows) {
      const entry = byRow.get(r.pk) ?? { ops: [], keys: new Set<string>() };
      entry.ops.push(r.op);
      entry.keys.add(r.ordering_key);
      byRow.set(r.pk, entry);
    }
    expect(byRow.size).toBe(30);
    const ops = [...byRow.values()].map((e) => e.ops.join(','));
    expect(ops.filter((o) => o === 'insert,update,snapshot,update')).toHaveLength(4);
    expect(ops.filter((o) => o === 'insert,update,snapshot')).toHaveLength(23);
    expect(ops.filter((o) => o === 'insert,update,delete')).toHaveLength(3);
    // One key per row across its insert, updates, snapshot and delete; every row's key distinct.
    for (const [pk, entry] of byRow) expect([...entry.keys], pk).toHaveLength(1);
    expect(new Set([...byRow.values()].map((e) => [...e.keys][0])).size).toBe(30);
    // The key is the trigger's spelling: the primary key's JSON values in key order.
    const [first] =
      await t.sql`SELECT ordering_key FROM pgpubsub.notifications WHERE channel = 'marks' AND op = 'snapshot' AND new->>'amount' = '1.10'`;
    expect(first?.ordering_key).toBe(
      '["it\'s 1 é", "2026-01-01T22:00:00.123456+00:00", 1.10, 0.3333333333333333]',
    );
    await t.sql`DELETE FROM pgpubsub.notifications`;
    await t.sql`DELETE FROM pgpubsub.backfills`;
  });

  it(`${ROWS} rows changed during the backfill: plain upserts at two listeners end equal to the table, each row's events applied in order`, async () => {
    await installChannels(t.sql, [docEvents]);
    const listeners: Listener<any>[] = [];
    const dbs = [t.drizzle(6), t.drizzle(6)];
    for (const [i, db] of dbs.entries()) {
      const name = `L${i + 1}`;
      listeners.push(
        createListener(db, { concurrency: 4, batchSize: 100 }).on(docEvents, async (event, tx) => {
          const row = event.op === 'delete' ? event.old : event.new;
          if (event.op === 'delete') await tx.execute(sql`DELETE FROM odocs_copy WHERE id = ${row.id}`);
          else
            await tx.execute(sql`INSERT INTO odocs_copy (id, title, version) VALUES (${row.id}, ${row.title}, ${row.version})
                ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, version = EXCLUDED.version`);
          await tx.execute(sql`INSERT INTO applied (event, doc, op, version, listener)
              VALUES (${event.id}, ${row.id}, ${event.op}, ${row.version}, ${name})`);
        }),
      );
    }
    await Promise.all(listeners.map((l) => l.start()));
    const writers = t.client({ max: 3 });
    let writing = true;
    let backfilling = true;
    let writesDuringBackfill = 0;
    // Updates go to the rows the backfill is about to reach or has just passed, so snapshots and
    // live events of the same rows interleave; some deletes and inserts too.
    let frontier = 1;
    const writer = async (seed: number) => {
      let n = seed;
      while (writing) {
        n = (n * 1103515245 + 12345) % 2147483648;
        const id = Math.max(1, Math.min(ROWS, frontier + (n % 400) - 200));
        if (n % 25 === 0) await writers`DELETE FROM odocs WHERE id = ${id}`;
        else if (n % 25 === 1) await writers`INSERT INTO odocs (title, version) VALUES ('new', 1)`;
        else
          await writers`UPDATE odocs SET version = version + 1, title = md5(random()::text) WHERE id = ${id}`;
        if (backfilling) writesDuringBackfill++;
      }
    };
    const running = [writer(1), writer(2), writer(3)];
    try {
      const result = await backfill(t.db, docEvents, {
        batchSize: 100,
        onProgress: ({ rows }) => {
          frontier = rows + 100;
        },
      });
      expect(result.finished).toBe(true);
      expect(result.rows).toBeGreaterThan(ROWS * 0.9);
    } finally {
      backfilling = false;
      writing = false;
      await Promise.all(running);
    }
    expect(writesDuringBackfill).toBeGreaterThan(0);
    await waitFor(
      async () =>
        (await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications WHERE channel = 'odocs'`)[0]?.n ===
        0,
      { timeoutMs: 180_000, intervalMs: 100, what: 'both listeners to handle every event' },
    );
    await Promise.all(listeners.map((l) => l.stop({ timeoutMs: 10_000 })));
    await Promise.all(dbs.map((db) => closeDb(db)));

    const [diff] = await t.sql`SELECT
        (SELECT count(*)::int FROM (SELECT * FROM odocs EXCEPT SELECT * FROM odocs_copy) a) AS missing,
        (SELECT count(*)::int FROM (SELECT * FROM odocs_copy EXCEPT SELECT * FROM odocs) b) AS extra,
        (SELECT count(*)::int FROM odocs) AS total`;
    expect(diff).toEqual({ missing: 0, extra: 0, total: diff?.total });
    // Per row, the consumer applied its events in event order (commit order of the row's changes,
    // snapshot included), so versions never went back, and every event exactly once.
    const [order] = await t.sql`SELECT
        count(*) FILTER (WHERE event < prev_event)::int AS out_of_order,
        count(*) FILTER (WHERE version < prev_version AND op <> 'insert')::int AS went_back,
        (SELECT count(*)::int FROM applied) - (SELECT count(DISTINCT event)::int FROM applied) AS duplicates
        FROM (SELECT event, op, version, lag(event) OVER w AS prev_event, lag(version) OVER w AS prev_version
          FROM applied WINDOW w AS (PARTITION BY doc ORDER BY seq)) s`;
    expect(order).toEqual({ out_of_order: 0, went_back: 0, duplicates: 0 });
    // The interleaving did happen: rows with live events both before and after their snapshot.
    const [mixed] = await t.sql`SELECT count(*)::int AS n FROM (SELECT doc FROM applied GROUP BY doc
        HAVING min(event) FILTER (WHERE op = 'update') < min(event) FILTER (WHERE op = 'snapshot')
           AND max(event) FILTER (WHERE op = 'update') > min(event) FILTER (WHERE op = 'snapshot')) m`;
    expect(mixed?.n).toBeGreaterThan(0);
    const per = await t.sql`SELECT listener, count(*)::int AS n FROM applied GROUP BY 1 ORDER BY 1`;
    expect(per.map((r) => r.listener)).toEqual(['L1', 'L2']);
  }, 240_000);
});
