/**
 * Why this file is over 300 lines: it is the one builder of a channel's trigger function, whose parts
 * (statement and row paths, the careful image fallback, the table check) are spliced into one plpgsql
 * body and must change together; everything here is pure string building.
 */
import { getTableColumns } from 'drizzle-orm';
import type { Column } from 'drizzle-orm/column';
import { getTableConfig } from 'drizzle-orm/pg-core';
import { type ColumnCasing as Casing, columnDbName } from '../casing.ts';
import type { TriggerChannel, TriggerOp } from '../channel.ts';
import { PgPubSubError } from '../errors.ts';
import { boundedIdent, dollarQuote, qualify, quoteIdent, quoteLiteral } from '../identifiers.ts';
import { DEFAULT_SCHEMA, wakeCondition, wakePrecheck } from './notifications.ts';
import {
  notificationsRef,
  PACK_CHUNK,
  PACK_CHUNK_BYTES,
  PACK_MAX_IMAGE_BYTES,
  PACK_THRESHOLD,
  packedRef,
} from './sql-names.ts';

/** Everything the SQL builders need about one trigger channel, with database names resolved. */
export interface TriggerSpec {
  channel: string;
  tableSchema: string;
  table: string;
  ops: TriggerOp[];
  /** Database names of the columns whose change produces update events (empty: any update). */
  columns: string[];
  when: string | null;
  /**
   * Ordered channels: database names of the primary-key columns, whose values key the events
   * (`ordering_key`); `null` for an unordered channel, whose SQL has no trace of it.
   */
  orderingKey?: string[] | null;
}

const SUFFIX: Record<TriggerOp | 'wake', string> = {
  insert: '_ins',
  update: '_upd',
  delete: '_del',
  truncate: '_trunc',
  wake: '_wake',
};

export { columnDbName };

/**
 * Resolves a channel into a {@link TriggerSpec}. Throws `NO_PRIMARY_KEY` for a table without a primary
 * key: events name their row by key, and an update of a keyless table could not be told apart.
 */
export function resolveTriggerSpec(channel: TriggerChannel<any, any>, casing?: Casing): TriggerSpec {
  const config = getTableConfig(channel.table);
  const columns = getTableColumns(channel.table) as Record<string, Column>;
  const hasPk = config.primaryKeys.length > 0 || Object.values(columns).some((c) => c.primary);
  if (!hasPk) {
    throw new PgPubSubError(
      'NO_PRIMARY_KEY',
      `Trigger channel "${channel.name}" watches table "${config.name}", which has no primary key. Add a primary key to the table (e.g. \`id: serial().primaryKey()\`).`,
    );
  }
  const spec: TriggerSpec = {
    channel: channel.name,
    tableSchema: config.schema ?? 'public',
    table: config.name,
    ops: [...channel.ops],
    columns: channel.columns.map((key) => columnDbName(columns[key]!, casing)),
    when: channel.when ?? null,
  };
  if (channel.ordered) {
    const pk = config.primaryKeys[0]?.columns ?? Object.values(columns).filter((c) => c.primary);
    spec.orderingKey = pk.map((c) => columnDbName(c, casing));
  }
  return spec;
}

/**
 * The SQL expression of an ordered trigger channel's `ordering_key` for the row `ref` (a record
 * such as `NEW`, or a table alias): the text of a jsonb array of its primary-key values, e.g.
 * `jsonb_build_array(n."id")::text`. `jsonb_build_array` converts each value with `to_jsonb`, so the
 * key equals the one built from the stored row image. Evaluate it under the trigger functions'
 * settings (`TimeZone = 'UTC'`, `DateStyle = 'ISO, MDY'`…) for keys that hold timestamps. Exported for
 * code that enqueues events of existing rows (a backfill) so its keys match the trigger's.
 */
export function orderingKeySql(primaryKey: readonly string[], ref: string): string {
  if (primaryKey.length === 0) throw new Error('orderingKeySql: no primary-key column');
  return `jsonb_build_array(${primaryKey.map((c) => `${ref}.${quoteIdent(c)}`).join(', ')})::text`;
}

/** The same key, read from a stored jsonb row image (`image -> 'column'` is `to_jsonb(value)`). */
export function imageKeySql(primaryKey: readonly string[], image: string): string {
  return `jsonb_build_array(${primaryKey.map((c) => `${image} -> ${quoteLiteral(c)}`).join(', ')})::text`;
}

/** Name of the trigger function of a channel, inside the pgpubsub schema. */
export function functionName(channel: string): string {
  return boundedIdent('ch_', channel);
}

/** Name of one of the triggers a channel puts on its table. */
export function triggerName(channel: string, kind: TriggerOp | 'wake'): string {
  return boundedIdent('pgpubsub_', channel, SUFFIX[kind]);
}

const CONTEXT = `coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb)`;

/**
 * Session settings the trigger functions run under, so row images never depend on the writing
 * session: interval, date and range text, float digits, timestamptz offsets and bytea text all come
 * out the same whatever the producer set. (`lc_monetary` is left alone: see docs/guarantees.md.)
 */
const FUNCTION_SETTINGS = [
  'search_path = pg_catalog, pg_temp',
  `DateStyle = 'ISO, MDY'`,
  `IntervalStyle = 'postgres'`,
  `extra_float_digits = '1'`,
  `TimeZone = 'UTC'`,
  `bytea_output = 'hex'`,
];

/** The settings of {@link FUNCTION_SETTINGS} that shape row images, as name/value pairs (backfill sets them). */
export const IMAGE_SETTINGS: readonly (readonly [string, string])[] = [
  ['DateStyle', 'ISO, MDY'],
  ['IntervalStyle', 'postgres'],
  ['extra_float_digits', '1'],
  ['TimeZone', 'UTC'],
  ['bytea_output', 'hex'],
];

/** The key that marks a `json` value jsonb cannot hold, kept as its JSON text (decode.ts reads it back). */
export const RAW_JSON_KEY = '$pgpubsub:json';

/**
 * plpgsql that sets `target` to the image of record `ref` without ever failing the user's write: the
 * jsonb object when it can be built; else the same object with each value jsonb rejects (a `json` value
 * holding `\u0000`, a lone surrogate or a huge number) kept losslessly as `{"$pgpubsub:json": text}`;
 * else (a row too large for jsonb) NULL with `v_error` set. Runs only after the fast path failed.
 */
function carefulImage(target: string, ref: string): string {
  return `BEGIN
      ${target} := to_jsonb(${ref});
    EXCEPTION WHEN OTHERS THEN
      BEGIN
        ${target} := '{}';
        FOR v_key IN SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped ORDER BY attnum LOOP
          BEGIN
            EXECUTE format('SELECT to_jsonb(($1).%I)', v_key) INTO v_part USING ${ref};
          EXCEPTION WHEN OTHERS THEN
            EXECUTE format('SELECT jsonb_build_object(%L, ($1).%I::text)', ${quoteLiteral(RAW_JSON_KEY)}, v_key) INTO v_part USING ${ref};
          END;
          ${target} := ${target} || jsonb_build_object(v_key, v_part);
        END LOOP;
      EXCEPTION WHEN OTHERS THEN
        ${target} := NULL;
        v_error := 'drizzle-pgpubsub could not store the row image (too large or not representable as jsonb): ' || SQLERRM;
      END;
    END;`;
}

const INHERITANCE =
  'Table {table} has inheritance children: drizzle-pgpubsub does not watch tables with inheritance (rows stored in a child fire no trigger of the parent). Use declarative partitioning, or watch each table itself.';

const STATUS = `CASE WHEN v_error IS NULL THEN 'pending' ELSE 'failed' END, v_error, CASE WHEN v_error IS NULL THEN NULL ELSE now() END`;

function functionSql(spec: TriggerSpec, schema: string): string {
  const s = quoteIdent(schema);
  const ch = quoteLiteral(spec.channel);
  const table = qualify(spec.tableSchema, spec.table);
  const when = spec.when === null ? null : `coalesce((${spec.when}), false)`;
  // Record-image comparison (binary equality, what `*=` does) needs no equality operator, so json,
  // point and custom types work; a representation change (1.0 -> 1.00) counts as a change.
  const changed =
    spec.columns.length === 0
      ? null
      : `pg_catalog.record_image_eq(ROW(${spec.columns.map((c) => `OLD.${quoteIdent(c)}`).join(', ')}), ROW(${spec.columns.map((c) => `NEW.${quoteIdent(c)}`).join(', ')}))`;
  const okey = spec.orderingKey ?? null;
  const cols = `("channel", "op", "old", "new", "context", "status", "last_error", "failed_at"${okey ? ', "ordering_key"' : ''})`;
  // Ordered channels: the key of the row (NEW for insert and update, OLD for delete).
  const setKey = (side: 'OLD' | 'NEW') => (okey ? `\n      v_okey := ${orderingKeySql(okey, side)};` : '');
  // Statement-level paths: transition tables are aliased "new"/"old" so a `when` written for a row
  // trigger works unchanged; the missing side is an all-NULL row (LEFT JOIN ... ON false). Images are
  // built from `alias.*`, which a column named "new" or "old" cannot shadow. They are built first, in
  // an exception block that writes nothing (so it takes no subtransaction id), and inserted after; a
  // statement holding a row jsonb cannot take falls back to building images one row at a time.
  const rowsOf = (op: 'insert' | 'delete') => {
    const [tt, alias, other] =
      op === 'insert' ? ['pgpubsub_new', 'new', 'old'] : ['pgpubsub_old', 'old', 'new'];
    const from = `FROM ${tt} AS ${alias}${when ? ` LEFT JOIN ${table} AS ${other} ON false WHERE ${when}` : ''}`;
    const [o, n] = op === 'insert' ? ['NULL', 'i'] : ['i', 'NULL'];
    const [ro, rn] = op === 'insert' ? ['NULL', 'v_image'] : ['v_image', 'NULL'];
    return `BEGIN
      v_images := ARRAY(SELECT to_jsonb(${alias}.*) ${from});
    EXCEPTION WHEN OTHERS THEN
      v_images := NULL;
    END;
    IF v_images IS NOT NULL THEN${
      okey
        ? ''
        : `
      -- Many events: packed, expanded by a listener (storage version 5). A packed row holds at most
      -- ${PACK_CHUNK} images and ${PACK_CHUNK_BYTES} bytes of them (a jsonb value holds at most 256 MB,
      -- so large images pack fewer a row); a statement with an image over ${PACK_MAX_IMAGE_BYTES} bytes
      -- keeps one row per event, as before.
      v_pack := 0;
      IF cardinality(v_images) >= ${PACK_THRESHOLD} THEN
        v_pack := least(${PACK_CHUNK}, ${PACK_CHUNK_BYTES} / greatest((SELECT max(pg_catalog.pg_column_size(b.img)) FROM unnest(v_images) AS b(img)), 1));
      END IF;
      IF v_pack >= ${PACK_CHUNK_BYTES / PACK_MAX_IMAGE_BYTES} THEN
        INSERT INTO ${packedRef(schema)} ("channel", "op", "count", "images", "context")
        SELECT ${ch}, '${op}', count(*), jsonb_agg(i.img ORDER BY i.ord), v_context
        FROM unnest(v_images) WITH ORDINALITY AS i(img, ord)
        GROUP BY (i.ord - 1) / v_pack ORDER BY (i.ord - 1) / v_pack;
        v_count := cardinality(v_images);
      ELSE`
    }
      INSERT INTO ${notificationsRef(schema)} ${cols}
      SELECT ${ch}, '${op}', ${o}, ${n}, v_context, 'pending', NULL, NULL${okey ? `, ${imageKeySql(okey, 'i')}` : ''} FROM unnest(v_images) AS i;
      GET DIAGNOSTICS v_count = ROW_COUNT;${okey ? '' : '\n      END IF;'}
    ELSE
      FOR r IN SELECT ROW(${alias}.*)::${table} AS pgpubsub_row ${from} LOOP
        v_error := NULL;
        ${carefulImage('v_image', 'r.pgpubsub_row')}
        INSERT INTO ${notificationsRef(schema)} ${cols}
        VALUES (${ch}, '${op}', ${ro}, ${rn}, v_context, ${STATUS}${okey ? `, ${orderingKeySql(okey, '(r.pgpubsub_row)')}` : ''});
        v_count := v_count + 1;
      END LOOP;
    END IF;`;
  };
  const branches: string[] = [];
  // TRUNCATE: one event per table and statement, no images (`when` does not apply: there are no rows).
  if (spec.ops.includes('truncate'))
    branches.push(`IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO ${notificationsRef(schema)} ${cols}
    VALUES (${ch}, 'truncate', NULL, NULL, v_context, 'pending', NULL, NULL);
    v_count := 1;
  END IF;`);
  if (spec.ops.includes('insert'))
    branches.push(`IF TG_OP = 'INSERT' THEN\n    ${rowsOf('insert')}\n  END IF;`);
  if (spec.ops.includes('delete'))
    branches.push(`IF TG_OP = 'DELETE' THEN\n    ${rowsOf('delete')}\n  END IF;`);
  const rowImage = (side: 'OLD' | 'NEW', target: string) => `BEGIN
        ${target} := to_jsonb(${side});
      EXCEPTION WHEN OTHERS THEN
        ${carefulImage(target, side)}
      END;`;
  // Row-level INSERT and DELETE triggers exist only on partitioned tables (createTriggerSql): they
  // are cloned to every partition, present and future, so writes addressed to a partition and rows
  // an UPDATE moves (a DELETE then an INSERT for PostgreSQL) are recorded too.
  const rowOps: string[] = [];
  if (spec.ops.includes('update'))
    rowOps.push(`IF TG_OP = 'UPDATE' THEN
      ${changed ? `IF ${changed} THEN RETURN NULL; END IF;\n      ` : ''}${when ? `IF NOT ${when} THEN RETURN NULL; END IF;\n      ` : ''}BEGIN
        v_image := to_jsonb(OLD);
        v_image2 := to_jsonb(NEW);
      EXCEPTION WHEN OTHERS THEN
        ${carefulImage('v_image', 'OLD')}
        ${carefulImage('v_image2', 'NEW')}
      END;${setKey('NEW')}
    END IF;`);
  if (spec.ops.includes('insert'))
    rowOps.push(`IF TG_OP = 'INSERT' THEN
      ${when ? `IF NOT ${when} THEN RETURN NULL; END IF;\n      ` : ''}${rowImage('NEW', 'v_image2')}${setKey('NEW')}
    END IF;`);
  if (spec.ops.includes('delete'))
    rowOps.push(`IF TG_OP = 'DELETE' THEN
      ${when ? `IF NOT ${when} THEN RETURN NULL; END IF;\n      ` : ''}${rowImage('OLD', 'v_image')}${setKey('OLD')}
    END IF;`);
  // The wake-up: a simple-expression pre-check (no listener session alive: no query at all), then
  // the flag query. Nested IFs, so the query runs only when the pre-check passes.
  const wake = (indent: string) => `IF ${wakePrecheck(schema)} THEN
${indent}  IF ${wakeCondition(ch, schema)} THEN
${indent}    PERFORM pg_notify(${ch}, '');
${indent}  END IF;
${indent}END IF;`;
  const rowLevel = `
  IF TG_LEVEL = 'ROW' THEN
    ${rowOps.join('\n    ')}
    INSERT INTO ${notificationsRef(schema)} ${cols}
    VALUES (${ch}, lower(TG_OP), v_image, v_image2, ${CONTEXT}, ${STATUS}${okey ? ', v_okey' : ''});
    -- Fired on a partition: no statement-level trigger of the parent sends the wake-up.
    IF TG_TABLE_NAME <> ${quoteLiteral(spec.table)} OR TG_TABLE_SCHEMA <> ${quoteLiteral(spec.tableSchema)} THEN
      ${wake('      ')}
    END IF;
    RETURN NULL;
  END IF;
  -- Nested IFs: a condition holding a subquery leaves plpgsql's fast path for simple expressions.
  IF TG_OP <> 'INSERT' THEN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhparent WHERE i.inhparent = TG_RELID AND c.relkind = 'r') THEN
      RAISE EXCEPTION ${quoteLiteral(INHERITANCE.replace(/%/g, '%%').replace('{table}', table.replace(/%/g, '%%')))}
        USING ERRCODE = 'feature_not_supported';
    END IF;
  END IF;${
    spec.ops.includes('update')
      ? `
  IF TG_OP = 'UPDATE' THEN
    v_count := 1;
  END IF;`
      : ''
  }`;
  // Only the table it was generated for (or one of its partitions) may fire it: with EXECUTE revoked
  // from PUBLIC nobody else can attach it, and this check holds even if EXECUTE is granted by mistake.
  // Names, not a regclass constant: resolved per call, so nothing breaks after a dump and restore.
  // A table renamed (or moved to another schema) after the migration keeps its triggers and firing:
  // a permanent table owned by a role the function's owner belongs to is the owner's own table, not
  // a forgery (an attacker's table is temporary or owned by the attacker).
  const check = `IF TG_TABLE_NAME <> ${quoteLiteral(spec.table)} OR TG_TABLE_SCHEMA <> ${quoteLiteral(spec.tableSchema)} THEN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(TG_RELID) AS a WHERE a.relid = pg_catalog.to_regclass(${quoteLiteral(table)}))
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c WHERE c.oid = TG_RELID AND c.relpersistence = 'p' AND pg_catalog.pg_has_role(c.relowner, 'USAGE')) THEN
      RAISE EXCEPTION ${quoteLiteral(`The drizzle-pgpubsub trigger function of channel "${spec.channel}" was generated for table ${table}`.replace(/%/g, '%%') + ' and may not fire for "%"."%"')}, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege', HINT = 'Renamed the table? Run drizzle-pgpubsub generate and apply its migration.';
    END IF;
  END IF;`;
  const body = `#variable_conflict use_column
DECLARE
  v_context jsonb := ${CONTEXT};
  v_count bigint := 0;
  v_image jsonb;
  v_image2 jsonb;
  v_images jsonb[];
  v_pack integer;
  v_error text;
  v_key text;
  v_part jsonb;${okey ? '\n  v_okey text;' : ''}
  r record;
BEGIN
  ${check}${rowLevel}
  ${branches.join('\n  ')}
  IF v_count > 0 THEN
    ${wake('    ')}
  END IF;
  RETURN NULL;
END`;
  return `CREATE OR REPLACE FUNCTION ${s}.${quoteIdent(functionName(spec.channel))}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER ${FUNCTION_SETTINGS.map((setting) => `SET ${setting}`).join(' ')} AS ${dollarQuote(body)}`;
}

function dropTriggersSql(spec: Pick<TriggerSpec, 'channel' | 'tableSchema' | 'table'>): string[] {
  const table = qualify(spec.tableSchema, spec.table);
  return (['insert', 'update', 'wake', 'delete', 'truncate'] as const).map(
    (kind) => `DROP TRIGGER IF EXISTS ${quoteIdent(triggerName(spec.channel, kind))} ON ${table}`,
  );
}

/**
 * Statements that install (or replace) a channel's function and triggers. INSERT and DELETE use
 * statement-level triggers with transition tables (one trigger call per statement, cheap for bulk
 * writes); UPDATE uses a row-level trigger, which pairs old and new rows even when the key changes,
 * plus a statement-level one that sends the wake-up hint once per statement. On a partitioned table
 * INSERT and DELETE use row-level triggers (cloned to every partition); a table with inheritance
 * children is refused. EXECUTE on the function is revoked from PUBLIC.
 */
export function createTriggerSql(spec: TriggerSpec, schema: string = DEFAULT_SCHEMA): string[] {
  const table = qualify(spec.tableSchema, spec.table);
  const fn = `${quoteIdent(schema)}.${quoteIdent(functionName(spec.channel))}()`;
  const of = spec.columns.length ? ` OF ${spec.columns.map(quoteIdent).join(', ')}` : '';
  // Inheritance is refused; a partitioned table gets row-level INSERT/DELETE triggers (see
  // functionSql). Decided when the migration runs: Drizzle does not describe either.
  const rowOrStatement = (name: string, event: 'INSERT' | 'DELETE', transition: string) =>
    `IF v_relkind = 'p' THEN
    EXECUTE ${quoteLiteral(`CREATE TRIGGER ${name} AFTER ${event} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${fn}`)};
  ELSE
    EXECUTE ${quoteLiteral(`CREATE TRIGGER ${name} AFTER ${event} ON ${table} REFERENCING ${transition} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`)};
  END IF;`;
  const create: string[] = [];
  const perKind: string[] = [];
  for (const op of spec.ops) {
    if (op === 'insert') {
      perKind.push(
        rowOrStatement(
          quoteIdent(triggerName(spec.channel, 'insert')),
          'INSERT',
          'NEW TABLE AS "pgpubsub_new"',
        ),
      );
    } else if (op === 'delete') {
      perKind.push(
        rowOrStatement(
          quoteIdent(triggerName(spec.channel, 'delete')),
          'DELETE',
          'OLD TABLE AS "pgpubsub_old"',
        ),
      );
    } else if (op === 'truncate') {
      create.push(
        `CREATE TRIGGER ${quoteIdent(triggerName(spec.channel, 'truncate'))} AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
      );
    } else {
      create.push(
        `CREATE TRIGGER ${quoteIdent(triggerName(spec.channel, 'update'))} AFTER UPDATE${of} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${fn}`,
        `CREATE TRIGGER ${quoteIdent(triggerName(spec.channel, 'wake'))} AFTER UPDATE${of} ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
      );
    }
  }
  const relkind = `DO ${dollarQuote(`DECLARE
  v_relkind "char" := (SELECT relkind FROM pg_catalog.pg_class WHERE oid = ${quoteLiteral(table)}::regclass);
BEGIN
  IF v_relkind = 'r' AND EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhparent = ${quoteLiteral(table)}::regclass) THEN
    RAISE EXCEPTION ${quoteLiteral(INHERITANCE.replace(/%/g, '%%').replace('{table}', table.replace(/%/g, '%%')))} USING ERRCODE = 'feature_not_supported';
  END IF;
  ${perKind.join('\n  ')}
END`)}`;
  return [
    functionSql(spec, schema),
    // New functions are executable by PUBLIC, and CREATE TRIGGER needs only EXECUTE: without this, any
    // role could attach the function to a table of its own and forge the channel's events.
    `REVOKE ALL ON FUNCTION ${fn} FROM PUBLIC`,
    ...dropTriggersSql(spec),
    relkind,
    ...create,
  ];
}

/**
 * A DO block that drops every trigger executing a channel's function, wherever its table is now: found
 * in `pg_trigger` by function, not by table name, so it works after the table was renamed or moved to
 * another schema (before or after this migration), and does nothing when the function or the table is
 * already gone. Triggers cloned to partitions go with their parent's. Only triggers that run our own
 * function are touched: EXECUTE on it is revoked from PUBLIC, so nobody else could have attached it.
 */
export function dropTriggersByFunctionSql(channel: string, schema: string = DEFAULT_SCHEMA): string {
  const fn = `${quoteIdent(schema)}.${quoteIdent(functionName(channel))}()`;
  return `DO ${dollarQuote(`DECLARE
  r record;
BEGIN
  FOR r IN SELECT t.tgname, c.relname, n.nspname FROM pg_catalog.pg_trigger AS t
      JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE t.tgfoid = pg_catalog.to_regprocedure(${quoteLiteral(fn)}) AND t.tgparentid = 0
    ORDER BY n.nspname, c.relname, t.tgname
  LOOP
    EXECUTE pg_catalog.format('DROP TRIGGER %I ON %I.%I', r.tgname, r.nspname, r.relname);
  END LOOP;
END`)}`;
}

/**
 * Statements that remove a channel's triggers and function. The triggers are found by function
 * ({@link dropTriggersByFunctionSql}), so this applies whatever drizzle-kit did to the table before or
 * after it (renamed, moved to another schema, dropped). `spec` names the table as last recorded.
 */
export function dropTriggerSql(
  spec: Pick<TriggerSpec, 'channel' | 'tableSchema' | 'table'>,
  schema: string = DEFAULT_SCHEMA,
): string[] {
  return [
    dropTriggersByFunctionSql(spec.channel, schema),
    `DROP FUNCTION IF EXISTS ${quoteIdent(schema)}.${quoteIdent(functionName(spec.channel))}()`,
  ];
}
