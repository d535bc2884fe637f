import { sql } from 'drizzle-orm';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { backfill, createListener, triggerChannel } from '../src/index.ts';
import { installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

// A backfill while writers keep changing the table ends with the consumer's copy equal to the table.
// BACKFILL_ROWS=100000 runs the full size by hand. The suite uses 5,000 rows in batches of
// 250: the same 20 batches, so as many batch boundaries for the writers to land between, as the
// 20,000 rows in batches of 1,000 it used to copy, at a quarter of the events to drain.
const ROWS = Number(process.env.BACKFILL_ROWS ?? 5_000);
const BATCH = Math.max(250, Math.round(ROWS / 20));

const docs = pgTable('docs', {
  id: serial().primaryKey(),
  title: text().notNull(),
  version: integer().notNull(),
});
const docEvents = triggerChannel(docs, { on: ['insert', 'update', 'delete'] });

const t = useTestDatabase([
  'CREATE TABLE docs (id serial PRIMARY KEY, title text NOT NULL, version integer NOT NULL)',
  `INSERT INTO docs (title, version) SELECT 'doc ' || g, 1 FROM generate_series(1, ${ROWS}) g`,
  // The consumer's copy. `last_event` is the id of the event that wrote the row (deletes leave a
  // tombstone): an event older than the one applied is skipped, so the copy ends in the state of each
  // key's latest event whatever order the listener handles them in (an ordered channel needs no check).
  'CREATE TABLE docs_copy (id integer PRIMARY KEY, title text NOT NULL, version integer NOT NULL, last_event bigint NOT NULL, deleted boolean NOT NULL)',
]);

describe('backfill under concurrent writes', () => {
  it(
    `copies ${ROWS} existing rows while writers update, delete and insert: the copy ends equal to the table`,
    async () => {
      await installChannels(t.sql, [docEvents]);
      const listener = createListener(t.db, { concurrency: 4, batchSize: 500 }).on(
        docEvents,
        async (event, tx) => {
          const row = event.op === 'delete' ? event.old : event.new;
          await tx.execute(sql`INSERT INTO docs_copy (id, title, version, last_event, deleted)
        VALUES (${row.id}, ${row.title}, ${row.version}, ${event.id}, ${event.op === 'delete'})
        ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, version = EXCLUDED.version,
          last_event = EXCLUDED.last_event, deleted = EXCLUDED.deleted
        WHERE docs_copy.last_event < EXCLUDED.last_event`);
        },
      );
      await listener.start();
      const writers = t.client({ max: 3 });
      let writing = true;
      let writes = 0;
      let writesDuringBackfill = 0;
      let backfilling = true;
      const timing = { backfillMs: 0, drainMs: 0 };
      const writer = async (seed: number) => {
        let n = seed;
        while (writing) {
          n = (n * 1103515245 + 12345) % 2147483648;
          const id = 1 + (n % ROWS);
          if (n % 20 === 0) await writers`DELETE FROM docs WHERE id = ${id}`;
          else if (n % 20 === 1) await writers`INSERT INTO docs (title, version) VALUES ('new', 1)`;
          else
            await writers`UPDATE docs SET version = version + 1, title = md5(random()::text) WHERE id = ${id}`;
          writes++;
          if (backfilling) writesDuringBackfill++;
        }
      };
      const running = [writer(1), writer(2), writer(3)];
      try {
        const t0 = performance.now();
        const result = await backfill(t.db, docEvents, { batchSize: BATCH });
        timing.backfillMs = Math.round(performance.now() - t0);
        backfilling = false;
        expect(result.finished).toBe(true);
        expect(result.rows).toBeGreaterThan(ROWS * 0.9);
        // Keep writing a little after the backfill too, then stop.
        const after = writes;
        await waitFor(() => writes > after + 50, { timeoutMs: 30_000, what: 'writes after the backfill' });
      } finally {
        writing = false;
        await Promise.all(running);
      }
      expect(writesDuringBackfill).toBeGreaterThan(0);
      const t1 = performance.now();
      await waitFor(
        async () => {
          const [r] =
            await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications WHERE channel = 'docs'`;
          return r?.n === 0;
        },
        {
          timeoutMs: Math.max(120_000, ROWS * 5),
          intervalMs: 100,
          what: 'the listener to handle every event',
        },
      );
      timing.drainMs = Math.round(performance.now() - t1);
      await listener.stop({ timeoutMs: 10_000 });
      const [diff] = await t.sql`SELECT
      (SELECT count(*)::int FROM (SELECT id, title, version FROM docs EXCEPT SELECT id, title, version FROM docs_copy WHERE NOT deleted) a) AS missing,
      (SELECT count(*)::int FROM (SELECT id, title, version FROM docs_copy WHERE NOT deleted EXCEPT SELECT id, title, version FROM docs) b) AS extra,
      (SELECT count(*)::int FROM docs) AS total`;
      expect(diff).toEqual({ missing: 0, extra: 0, total: diff?.total });
      expect(diff?.total).toBeGreaterThan(ROWS * 0.9);
      console.log(
        `backfill-sync: ${ROWS} rows, ${writes} writes (${writesDuringBackfill} during the backfill), ${JSON.stringify(timing)}`,
      );
    },
    Math.max(180_000, ROWS * 8),
  );
});
