/**
 * Backfill throughput (docs/sync.md#how-fast): a backfill of N rows into an unordered and an ordered
 * trigger channel, then a listener draining the snapshots, each in a scratch database; also a
 * backfill with the listener draining at the same time. Prints rows/s, the per-page cost at the start
 * and end of the run (a growing cost would mean the page query is not O(page)), and EXPLAIN ANALYZE
 * of one page query in the middle of the table.
 *
 *   node --import jiti/register bench/backfill.ts [--rows 100000] [--batch 1000] [--url postgres://…]
 *
 * Default URL: DATABASE_URL, else the machine's PostgreSQL on 127.0.0.1:5432. Not a test: numbers
 * only, on whatever else the machine is doing (the load average is printed).
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { sql } from 'drizzle-orm';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { backfill, createListener, triggerChannel } from '../src/index.ts';
import { storageMigrationSql } from '../src/storage/notifications.ts';
import { createTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '4' },
    url: {
      type: 'string',
      default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
    only: { type: 'string' },
    handler: { type: 'string', default: 'upsert' },
    'skip-together': { type: 'boolean', default: false },
  },
});
const ROWS = Number(values.rows);
const BATCH = Number(values.batch);
const CONCURRENCY = Number(values.concurrency);

const articles = pgTable('articles', {
  id: serial().primaryKey(),
  title: text().notNull(),
  body: text().notNull(),
  views: integer().notNull(),
});
const unordered = triggerChannel(articles, { on: ['insert', 'update', 'delete'], name: 'unordered' });
const ordered = triggerChannel(articles, {
  on: ['insert', 'update', 'delete'],
  name: 'ordered',
  ordered: true,
});

const admin = postgres(values.url!, { max: 1, onnotice: () => {} });

async function scratch(channel: typeof unordered) {
  const name = `bench_backfill_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(values.url!);
  url.pathname = `/${name}`;
  const client = postgres(url.toString(), { max: 10, onnotice: () => {} });
  for (const s of storageMigrationSql()) await client.unsafe(s);
  await client.unsafe(
    'CREATE TABLE articles (id serial PRIMARY KEY, title text NOT NULL, body text NOT NULL, views integer NOT NULL)',
  );
  // ~300-byte rows, like a small article.
  await client.unsafe(
    `INSERT INTO articles (title, body, views) SELECT 'title ' || g, repeat(md5(g::text), 8), g FROM generate_series(1, ${ROWS}) g`,
  );
  for (const s of createTriggerSql(resolveTriggerSpec(channel))) await client.unsafe(s);
  await client.unsafe('VACUUM ANALYZE articles');
  return {
    client,
    db: drizzle({ client }),
    drop: async () => {
      await client.end({ timeout: 5 });
      await admin.unsafe(`DROP DATABASE ${name} WITH (FORCE)`);
    },
  };
}

const pending = async (client: postgres.Sql, name: string) =>
  Number((await client`SELECT count(*)::int AS n FROM pgpubsub.notifications WHERE channel = ${name}`)[0]!.n);

async function waitEmpty(client: postgres.Sql, name: string) {
  for (;;) {
    if ((await pending(client, name)) === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const rate = (rows: number, ms: number) => Math.round((rows / ms) * 1000);

function listenerFor(db: ReturnType<typeof drizzle>, channel: typeof unordered) {
  let handled = 0;
  const listener = createListener(db, { concurrency: CONCURRENCY, batchSize: 500 }).on(
    channel,
    async (event, tx) => {
      // A cheap consumer: one upsert per event, as a search-index sync would do (into a local table);
      // `--handler noop` measures the claim/decode/delete path alone.
      if (values.handler !== 'noop') {
        const row = event.op === 'delete' ? event.old! : event.new!;
        await tx.execute(sql`INSERT INTO copy (id, views) VALUES (${row.id}, ${row.views})
        ON CONFLICT (id) DO UPDATE SET views = EXCLUDED.views`);
      }
      handled++;
    },
  );
  return { listener, handled: () => handled };
}

async function measure(channel: typeof unordered) {
  const out: Record<string, unknown> = { channel: channel.name, ordered: channel.ordered === true };
  // 1. Backfill alone, then the drain alone.
  {
    const { client, db, drop } = await scratch(channel);
    await client.unsafe('CREATE TABLE copy (id integer PRIMARY KEY, views integer NOT NULL)');
    try {
      const pages: number[] = [];
      let last = performance.now();
      const t0 = performance.now();
      const result = await backfill(db, channel, {
        batchSize: BATCH,
        onProgress: () => {
          const now = performance.now();
          pages.push(now - last);
          last = now;
        },
      });
      const backfillMs = performance.now() - t0;
      const tenth = Math.max(1, Math.floor(pages.length / 10));
      const avg = (xs: number[]) => Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10;
      out.backfill = {
        rows: result.rows,
        pages: result.pages,
        ms: Math.round(backfillMs),
        rowsPerSec: rate(result.rows, backfillMs),
        pageMsFirstTenth: avg(pages.slice(0, tenth)),
        pageMsLastTenth: avg(pages.slice(-tenth)),
      };
      // EXPLAIN ANALYZE of a page in the middle of the table, as backfill() runs it (rolled back).
      const mid = Math.floor(ROWS / 2);
      const plan = await client
        .begin(async (tx) => {
          const lines = await tx.unsafe(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) WITH page AS (
  SELECT to_jsonb(public.articles.*) AS image, jsonb_build_object('id', public.articles.id) AS key, public.articles.id AS "pgpubsub_k0"
  FROM public.articles
  WHERE (public.articles.id) > ((jsonb_populate_record(NULL::public.articles, '{"id": ${mid}}'::jsonb)).id) AND true
  ORDER BY public.articles.id LIMIT ${BATCH} FOR SHARE OF articles
), numbered AS (SELECT image, key, row_number() OVER (ORDER BY "pgpubsub_k0") AS n FROM page),
written AS (INSERT INTO pgpubsub.notifications ("channel", "op", "old", "new", "context", "ordering_key")
  SELECT '${channel.name}', 'snapshot', NULL, image, '{}'::jsonb, ${channel.ordered ? `jsonb_build_array(image -> 'id')::text` : 'NULL::text'} FROM numbered ORDER BY n RETURNING 1)
SELECT (SELECT count(*) FROM written)::int AS count, (SELECT key::text FROM numbered ORDER BY n DESC LIMIT 1) AS last`);
          throw Object.assign(new Error('rollback'), { lines });
        })
        .catch((e: { lines?: { 'QUERY PLAN': string }[] }) => {
          if (!e.lines) throw e;
          return e.lines.map((l) => l['QUERY PLAN']);
        });
      out.pagePlan = plan;
      const { listener, handled } = listenerFor(db, channel);
      const t1 = performance.now();
      await listener.start();
      await waitEmpty(client, channel.name);
      const drainMs = performance.now() - t1;
      await listener.stop({ timeoutMs: 10_000 });
      out.drain = { events: handled(), ms: Math.round(drainMs), eventsPerSec: rate(handled(), drainMs) };
    } finally {
      await drop();
    }
  }
  // 2. Backfill with the listener draining at the same time (the usual way to run it).
  if (!values['skip-together']) {
    const { client, db, drop } = await scratch(channel);
    await client.unsafe('CREATE TABLE copy (id integer PRIMARY KEY, views integer NOT NULL)');
    try {
      const { listener, handled } = listenerFor(db, channel);
      await listener.start();
      const t0 = performance.now();
      const result = await backfill(db, channel, { batchSize: BATCH });
      const backfillMs = performance.now() - t0;
      const left = await pending(client, channel.name);
      await waitEmpty(client, channel.name);
      const totalMs = performance.now() - t0;
      await listener.stop({ timeoutMs: 10_000 });
      out.together = {
        backfillMs: Math.round(backfillMs),
        backfillRowsPerSec: rate(result.rows, backfillMs),
        pendingWhenBackfillDone: left,
        allHandledMs: Math.round(totalMs),
        endToEndRowsPerSec: rate(handled(), totalMs),
      };
    } finally {
      await drop();
    }
  }
  return out;
}

const [server] = await admin`SELECT current_setting('server_version') AS v`;
console.log(
  JSON.stringify({
    rows: ROWS,
    batch: BATCH,
    handler: values.handler,
    concurrency: CONCURRENCY,
    postgres: server!.v,
    cpus: os.cpus().length,
    loadavgStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  }),
);
for (const channel of [unordered, ordered]) {
  if (values.only && values.only !== channel.name) continue;
  const result = await measure(channel);
  const { pagePlan, ...numbers } = result;
  console.log(JSON.stringify(numbers));
  console.log((pagePlan as string[]).join('\n'));
}
console.log(JSON.stringify({ loadavgEnd: os.loadavg().map((x) => Math.round(x * 100) / 100) }));
await admin.end();
