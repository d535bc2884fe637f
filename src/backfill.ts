/**
 * `backfill()`: one `snapshot` event per existing row of a trigger channel's table, written in short
 * transactions paged by primary key, resumable from the progress stored in `pgpubsub.backfills`.
 * Driver-free: it takes any Drizzle PostgreSQL database. The guide is docs/sync.md.
 *
 * @module
 */
import { type SQL, sql } from 'drizzle-orm';
import { getTableConfig } from 'drizzle-orm/pg-core';
import { type AnyPgDb, rowsOf } from './admin.ts';
import { isTriggerChannel, type TriggerChannel } from './channel.ts';
import { isDrizzleTransaction } from './drizzle-compat.ts';
import { PgPubSubError } from './errors.ts';
import { qualify, quoteIdent, quoteLiteral } from './identifiers.ts';
import { DEFAULT_SCHEMA, wakeCondition } from './storage/notifications.ts';
import { backfillsRef, notificationsRef } from './storage/sql-names.ts';
import { functionName, IMAGE_SETTINGS, imageKeySql } from './storage/trigger-sql.ts';

/** Options of {@link backfill}. */
export interface BackfillOptions {
  /**
   * An SQL condition over the table's columns (plain or qualified by the table name): only matching
   * rows get a snapshot. Example: `"status = 'published'"`. A resumed run must pass the same one.
   */
  where?: string;
  /** Rows per transaction (page). Default 1000. */
  batchSize?: number;
  /** pg schema of the notifications table. Default `pgpubsub`. */
  schema?: string;
  /** Discard the progress of an unfinished run and start from the first row. Default `false`. */
  restart?: boolean;
  /** Stop after this many pages (the run stays unfinished; the next call resumes). */
  maxPages?: number;
  /** Stops the run between two pages (the run stays unfinished; the next call resumes). */
  signal?: AbortSignal;
  /** JSON context stored with every snapshot event (`event.context`). Default `{}`. */
  context?: Record<string, unknown>;
  /** Called after each page with the progress so far. */
  onProgress?: (progress: BackfillProgress) => void;
}

/** Progress reported by {@link BackfillOptions.onProgress}. */
export interface BackfillProgress {
  /** Rows enqueued by this call so far. */
  rows: number;
  /** Pages (transactions) committed by this call so far. */
  pages: number;
  /** Rows to go when this call started (counted once, at the start); the rows of the table may change. */
  total: number;
}

/** What {@link backfill} did. */
export interface BackfillResult {
  channel: string;
  /** Snapshot events written by this call. */
  rows: number;
  /** Pages (transactions) committed by this call. */
  pages: number;
  /** Snapshot events written by the whole run, across resumed calls. */
  totalRows: number;
  /** Whether this call continued a run that an earlier call left unfinished. */
  resumed: boolean;
  /** Whether every row has been enqueued (false after `maxPages` or `signal` stopped the call). */
  finished: boolean;
  durationMs: number;
}

interface Target {
  table: string;
  /** Database names of the primary key columns, in key order. */
  key: string[];
}

const DEFAULT_BATCH = 1000;

function fail(code: ConstructorParameters<typeof PgPubSubError>[0], message: string): never {
  throw new PgPubSubError(code, message);
}

/**
 * ANALYZE of the notifications table, waiting at most 1 s for its lock (a running VACUUM holds it);
 * never fails the backfill (a role that does not own the table gets a WARNING only).
 */
async function analyze(db: AnyPgDb, schema: string): Promise<void> {
  await db
    .transaction(async (tx) => {
      await tx.execute(sql`SELECT set_config('lock_timeout', '1s', true)`);
      await tx.execute(sql.raw(`ANALYZE ${notificationsRef(schema)}`));
    })
    .catch(() => {});
}

/** Checks the storage, the channel's trigger function and the table, and reads the primary key. */
async function inspect(db: AnyPgDb, channel: TriggerChannel<any, any>, schema: string): Promise<Target> {
  const config = getTableConfig(channel.table);
  const table = qualify(config.schema ?? 'public', config.name);
  const fn = `${quoteIdent(schema)}.${quoteIdent(functionName(channel.name))}()`;
  const [row] = rowsOf(
    await db.execute(sql`SELECT to_regclass(${notificationsRef(schema)}) IS NOT NULL AS storage,
      to_regclass(${backfillsRef(schema)}) IS NOT NULL AS progress,
      to_regprocedure(${fn}) IS NOT NULL AS installed,
      to_regclass(${table}) IS NOT NULL AS table_exists,
      ARRAY(SELECT a.attname::text FROM pg_catalog.pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = to_regclass(${table}) AND i.indisprimary ORDER BY k.n) AS key`),
  );
  const run = 'Run `npx drizzle-pgpubsub generate` and then `npx drizzle-kit migrate`.';
  if (!row?.storage)
    fail('TABLE_MISSING', `The notifications table ${notificationsRef(schema)} does not exist. ${run}`);
  if (!row.progress) {
    fail(
      'STORAGE_OUTDATED',
      `The storage in schema "${schema}" predates backfill (no ${backfillsRef(schema)} table). ${run}`,
    );
  }
  if (!row.table_exists) {
    fail(
      'CHANNEL_NOT_INSTALLED',
      `Channel "${channel.name}" watches table ${table}, which does not exist. ${run}`,
    );
  }
  if (!row.installed) {
    fail(
      'CHANNEL_NOT_INSTALLED',
      `Channel "${channel.name}" has no trigger in the database, so changes made during a backfill would be lost. ${run}`,
    );
  }
  const key = row.key as string[];
  if (key.length === 0) {
    fail(
      'NO_PRIMARY_KEY',
      `Table ${table} has no primary key: backfill pages by primary key. Add a primary key to the table.`,
    );
  }
  return { table, key };
}

/** The keyset condition: the row's key after the stored `last_key` (a jsonb object of key columns). */
function after(target: Target, lastKey: unknown): SQL {
  if (typeof lastKey !== 'string') return sql`true`;
  const cols = target.key.map((c) => `${target.table}.${quoteIdent(c)}`).join(', ');
  // jsonb_populate_record reads the key back in the columns' own types; the row comparison is an
  // index condition on the primary key (its right side is computed once per scan). JSON text goes in
  // as `text` then `::jsonb`: drizzle-orm 1.0 on postgres.js JSON-encodes a string bound as jsonb.
  const last = sql.join(
    target.key.map(
      (c) =>
        sql`(jsonb_populate_record(NULL::${sql.raw(target.table)}, ${lastKey}::text::jsonb)).${sql.raw(quoteIdent(c))}`,
    ),
    sql`, `,
  );
  return sql`(${sql.raw(cols)}) > (${last})`;
}

/** Starts or resumes the run's progress row; returns whether it resumed. */
async function begin(db: AnyPgDb, name: string, ref: string, where: string | null, restart: boolean) {
  return db.transaction(async (tx) => {
    const [row] = rowsOf(
      await tx.execute(
        sql`SELECT "where_sql", "finished_at" IS NOT NULL AS finished FROM ${sql.raw(ref)} WHERE "channel" = ${name} FOR UPDATE`,
      ),
    );
    if (row && !row.finished && !restart) {
      if ((row.where_sql ?? null) !== where) {
        fail(
          'BACKFILL_CONFLICT',
          `An unfinished backfill of channel "${name}" used ${row.where_sql === null ? 'no where condition' : `where ${JSON.stringify(row.where_sql)}`}; this call uses ${where === null ? 'none' : JSON.stringify(where)}. Pass the same condition to resume, or \`restart: true\` (CLI: --restart) to start over.`,
        );
      }
      return true;
    }
    await tx.execute(sql`INSERT INTO ${sql.raw(ref)} ("channel", "where_sql") VALUES (${name}, ${where})
      ON CONFLICT ("channel") DO UPDATE SET "last_key" = NULL, "where_sql" = EXCLUDED."where_sql", "rows" = 0, "pages" = 0,
        "started_at" = now(), "updated_at" = now(), "finished_at" = NULL`);
    return false;
  });
}

/**
 * Enqueues one `snapshot` event per existing row of the channel's table (optionally only rows
 * matching `where`), so handlers see rows that existed before the channel or before a handler fix.
 * Each page of `batchSize` rows is one short transaction that locks its rows `FOR SHARE`, writes their
 * images exactly as the trigger would (`event.new`, decoded like any event) and records the last key
 * in `pgpubsub.backfills`: a run that stopped or crashed resumes after the last committed page.
 * A concurrent update of a row is ordered before or after its snapshot (see docs/sync.md).
 *
 * Pass the database, not a transaction: a backfill commits page by page.
 *
 * @example
 * const { rows } = await backfill(db, postEvents, { where: "status = 'published'" });
 */
export async function backfill(
  db: AnyPgDb,
  channel: TriggerChannel<any, any>,
  options: BackfillOptions = {},
): Promise<BackfillResult> {
  const started = performance.now();
  if (!isTriggerChannel(channel)) {
    fail('INVALID_CHANNEL', 'backfill() takes a trigger channel (made by triggerChannel()).');
  }
  if (isDrizzleTransaction(db)) {
    fail(
      'INVALID_OPTIONS',
      'backfill() commits page by page and cannot run inside your transaction: pass the database (`db`), not `tx`.',
    );
  }
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    fail('INVALID_OPTIONS', `backfill: \`batchSize\` must be a positive integer, got ${batchSize}.`);
  }
  const maxPages = options.maxPages ?? Number.POSITIVE_INFINITY;
  if (maxPages !== Number.POSITIVE_INFINITY && (!Number.isInteger(maxPages) || maxPages < 1)) {
    fail('INVALID_OPTIONS', `backfill: \`maxPages\` must be a positive integer, got ${maxPages}.`);
  }
  const where = options.where?.trim() ? options.where.trim() : null;
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const target = await inspect(db, channel, schema);
  const ref = backfillsRef(schema);
  const resumed = await begin(db, channel.name, ref, where, options.restart === true);
  const condition = where === null ? sql`true` : sql.raw(`(${where})`);

  let total = 0;
  if (options.onProgress) {
    const [progress] = rowsOf(
      await db.execute(
        sql`SELECT "last_key"::text AS last_key FROM ${sql.raw(ref)} WHERE "channel" = ${channel.name}`,
      ),
    );
    const [count] = rowsOf(
      await db.execute(
        sql`SELECT count(*)::text AS n FROM ${sql.raw(target.table)} WHERE ${after(target, progress?.last_key)} AND ${condition}`,
      ),
    );
    total = Number(count?.n ?? 0);
  }

  const keyCols = target.key.map((c) => `${target.table}.${quoteIdent(c)}`).join(', ');
  const keyObject = target.key.map((c) => `${quoteLiteral(c)}, ${target.table}.${quoteIdent(c)}`).join(', ');
  const keyAs = target.key.map((c, i) => `${target.table}.${quoteIdent(c)} AS "pgpubsub_k${i}"`).join(', ');
  const keyNames = target.key.map((_, i) => `"pgpubsub_k${i}"`).join(', ');
  const context = JSON.stringify(options.context ?? {});
  // Ordered channels: the snapshot joins its row's key, spelled as the trigger spells it (the
  // primary key's columns in the key's order, read from the image).
  const orderingKey = channel.ordered ? imageKeySql(target.key, 'image') : 'NULL::text';
  let rows = 0;
  let pages = 0;
  let totalRows = 0;
  let finished = false;
  while (pages < maxPages && !options.signal?.aborted) {
    const page = await db.transaction(async (tx) => {
      // Row images under the trigger functions' own settings, so they are byte for byte the same.
      for (const [name, value] of IMAGE_SETTINGS) {
        await tx.execute(sql`SELECT set_config(${name}, ${value}, true)`);
      }
      // Serializes concurrent runs of the same channel page by page (each reads the latest key).
      const [progress] = rowsOf(
        await tx.execute(
          sql`SELECT "last_key"::text AS last_key, "finished_at" IS NOT NULL AS finished, "rows"::text AS rows FROM ${sql.raw(ref)} WHERE "channel" = ${channel.name} FOR UPDATE`,
        ),
      );
      if (!progress || progress.finished) return { count: 0, totalRows: Number(progress?.rows ?? 0) };
      // FOR SHARE (not KEY SHARE) conflicts with every UPDATE and DELETE of the row: a concurrent
      // change's event is written either before this read (which then sees its result) or after this
      // transaction commits, so per key the snapshot sits in commit order among the trigger's events.
      const [result] = rowsOf(
        await tx.execute(sql`WITH page AS (
  SELECT to_jsonb(${sql.raw(target.table)}.*) AS image, jsonb_build_object(${sql.raw(keyObject)}) AS key, ${sql.raw(keyAs)}
  FROM ${sql.raw(target.table)}
  WHERE ${after(target, progress.last_key)} AND ${condition}
  ORDER BY ${sql.raw(keyCols)}
  LIMIT ${batchSize}
  FOR SHARE OF ${sql.raw(quoteIdent(getTableConfig(channel.table).name))}
), numbered AS (
  SELECT image, key, row_number() OVER (ORDER BY ${sql.raw(keyNames)}) AS n FROM page
), written AS (
  INSERT INTO ${sql.raw(notificationsRef(schema))} ("channel", "op", "old", "new", "context", "ordering_key")
  SELECT ${channel.name}, 'snapshot', NULL, image, ${context}::text::jsonb, ${sql.raw(orderingKey)} FROM numbered ORDER BY n
  RETURNING 1
)
SELECT (SELECT count(*) FROM written)::int AS count, (SELECT key::text FROM numbered ORDER BY n DESC LIMIT 1) AS last`),
      );
      const count = Number(result?.count ?? 0);
      const done = count === 0;
      const [updated] = rowsOf(
        await tx.execute(sql`UPDATE ${sql.raw(ref)} SET
  "last_key" = coalesce(${done ? null : (result?.last as string)}::text::jsonb, "last_key"),
  "rows" = "rows" + ${count}, "pages" = "pages" + ${done ? 0 : 1}, "updated_at" = now(),
  "finished_at" = ${done ? sql`now()` : sql`NULL`}
WHERE "channel" = ${channel.name} RETURNING "rows"::text AS rows`),
      );
      if (count > 0) {
        await tx.execute(
          sql`SELECT pg_notify(${channel.name}, '') WHERE ${sql.raw(wakeCondition(quoteLiteral(channel.name), schema))}`,
        );
      }
      return { count, totalRows: Number(updated?.rows ?? 0) };
    });
    totalRows = page.totalRows;
    if (page.count === 0) {
      finished = true;
      break;
    }
    rows += page.count;
    pages += 1;
    // After the first page, and at the end (below): fresh statistics of the notifications table, as
    // PostgreSQL advises after a bulk load, so that claims draining the snapshots (meanwhile and
    // after) are planned for what the table now holds, not for what it held at the last autovacuum
    // analyze (docs/sync.md#how-fast). Best effort: a role that does not own the table gets a warning.
    if (pages === 1) await analyze(db, schema);
    options.onProgress?.({ rows, pages, total });
  }
  if (pages > 1) await analyze(db, schema);
  return {
    channel: channel.name,
    rows,
    pages,
    totalRows,
    resumed,
    finished,
    durationMs: performance.now() - started,
  };
}
