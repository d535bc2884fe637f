import { getTableColumns } from 'drizzle-orm';
import type { Column } from 'drizzle-orm/column';
import { getTableConfig, type PgTable } from 'drizzle-orm/pg-core';
import { PgPubSubError } from '../errors.ts';
import { qualify, quoteIdent, quoteLiteral } from '../identifiers.ts';
import { RAW_JSON_KEY } from '../storage/trigger-sql.ts';

/**
 * Entries a SELECT list may hold (PostgreSQL's `MaxTupleAttributeNumber`). A claim that expands the
 * old and the new image side by side needs two per column, so from ~830 columns images are expanded
 * one side per output row instead ({@link isWide}); PostgreSQL's table limit is 1,600 columns.
 */
export const MAX_TARGET_ENTRIES = 1664;

/**
 * How the columns of a table are named and read, exactly as `db.select()` names and reads them
 * (built by `drizzle-adapter.ts` for the installed drizzle-orm version and the database's driver).
 */
export interface ColumnCodecs {
  /** The column's database name. */
  getColumnCasing(column: Column): string;
  /** Wraps the SQL expression selecting the column as Drizzle's select does (1.0 codecs' casts). */
  select?(column: Column, expression: string): string;
  /** Turns the driver's value (never null) into the `db.select()` value; default `mapFromDriverValue`. */
  read?(column: Column, value: unknown): unknown;
}

/** How to read one table's row images back into `typeof table.$inferSelect` values. */
export interface RowDecoder {
  /** `jsonb_populate_record` target type, e.g. `"public"."authors"`. */
  rowType: string;
  /** The table's pg schema (its row type lives there: the listener needs USAGE on it). */
  schema: string;
  /**
   * JS key, database name and Drizzle column of each column, in a fixed order, with how to select
   * it (`select`, given the column reference) and how to read the driver's value (`read`).
   */
  columns: {
    key: string;
    dbName: string;
    column: Column;
    select: (ref: string) => string;
    read: (value: unknown) => unknown;
  }[];
}

/**
 * Builds the decoder of a table. `codecs` come from the Drizzle database (drizzle-adapter.ts), so
 * column names resolve and values read exactly as `db.select()` resolves and reads them.
 */
export function rowDecoder(table: PgTable, codecs: ColumnCodecs): RowDecoder {
  const config = getTableConfig(table);
  return {
    rowType: qualify(config.schema, config.name),
    schema: config.schema ?? 'public',
    columns: Object.entries(getTableColumns(table) as Record<string, Column>).map(([key, column]) => ({
      key,
      dbName: codecs.getColumnCasing(column),
      column,
      select: codecs.select ? (ref: string) => codecs.select!(column, ref) : (ref: string) => ref,
      read: codecs.read
        ? (value: unknown) => codecs.read!(column, value)
        : (value: unknown) => column.mapFromDriverValue(value),
    })),
  };
}

/** True when old and new images side by side would exceed PostgreSQL's SELECT list limit. */
export function isWide(decoder: RowDecoder, extra: number): boolean {
  return 2 * (decoder.columns.length + 1) + extra > MAX_TARGET_ENTRIES;
}

/**
 * SQL select list that expands a row image (a jsonb column of `source`) into the table's columns,
 * typed by PostgreSQL itself through `jsonb_populate_record`: bigint, numeric, timestamps and arrays
 * keep full fidelity, unknown keys are ignored and missing ones are NULL.
 */
export function expandImageSql(decoder: RowDecoder, alias: string): string {
  return decoder.columns.map((c) => c.select(`${quoteIdent(alias)}.${quoteIdent(c.dbName)}`)).join(', ');
}

/** The lateral join that produces `alias` from the image in `expression`. */
export function populateSql(decoder: RowDecoder, expression: string, alias: string): string {
  return `LEFT JOIN LATERAL jsonb_populate_record(NULL::${decoder.rowType}, ${imageSql(decoder, expression)}) AS ${quoteIdent(alias)} ON true`;
}

const BACKSLASH = 'chr(92)';
/** hstore's text form of one key or value (quoted, `\` and `"` escaped), in pg_catalog SQL only. */
function hstoreQuoted(text: string): string {
  return `'"' || replace(replace(${text}, ${BACKSLASH}, ${BACKSLASH} || ${BACKSLASH}), '"', ${BACKSLASH} || '"') || '"'`;
}
/** SQL turning the jsonb object `to_jsonb(hstore)` produced back into hstore's input text. */
function hstoreText(object: string): string {
  return `(SELECT coalesce(string_agg(${hstoreQuoted('e.k')} || '=>' || coalesce(${hstoreQuoted('e.v')}, 'NULL'), ', '), '') FROM jsonb_each_text(${object}) AS e(k, v))`;
}

/** `hstore`, `"hstore"`, `ext.hstore`: the Drizzle SQL type of an hstore column, or of a 1-D array of them. */
function hstoreKind(column: Column): 'scalar' | 'array' | null {
  const type = column.getSQLType().replaceAll('"', '').trim().toLowerCase();
  const base = type.replace(/^.*\./, '');
  if (base === 'hstore') return 'scalar';
  if (base === 'hstore[]') return 'array';
  return null;
}

/**
 * The image as `jsonb_populate_record` can read it. Types whose `to_jsonb` form is not their text
 * form cannot be read back by it: `hstore` becomes a JSON object, which hstore's input rejects, so
 * such values are turned back into hstore text (in pg_catalog SQL: no extension function is called,
 * whatever schema the extension lives in).
 */
function imageSql(decoder: RowDecoder, expression: string): string {
  const fixes: string[] = [];
  for (const c of decoder.columns) {
    const kind = hstoreKind(c.column);
    if (!kind) continue;
    const key = quoteLiteral(c.dbName);
    const value = `${expression}->${key}`;
    const fixed =
      kind === 'scalar'
        ? `CASE WHEN jsonb_typeof(${value}) = 'object' THEN to_jsonb(${hstoreText(value)}) END`
        : `CASE WHEN jsonb_typeof(${value}) = 'array' THEN (SELECT jsonb_agg(CASE WHEN jsonb_typeof(a.e) = 'object' THEN to_jsonb(${hstoreText('a.e')}) ELSE a.e END ORDER BY a.i) FROM jsonb_array_elements(${value}) WITH ORDINALITY AS a(e, i)) END`;
    fixes.push(`${key}, ${fixed}`);
  }
  if (fixes.length === 0) return expression;
  // A function takes at most 100 arguments: 40 key/value pairs per jsonb_build_object.
  const objects: string[] = [];
  for (let i = 0; i < fixes.length; i += 40) {
    objects.push(`jsonb_strip_nulls(jsonb_build_object(${fixes.slice(i, i + 40).join(', ')}))`);
  }
  return `(${[expression, ...objects].join(' || ')})`;
}

/** Maps driver values (as returned for the expanded columns) through the columns' own decoders. */
export function mapRow(
  decoder: RowDecoder,
  values: readonly unknown[],
  offset: number,
): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  decoder.columns.forEach((c, i) => {
    const value = rawJson(c.column, values[offset + i]);
    row[c.key] = value === null || value === undefined ? null : c.read(value);
  });
  return row;
}

/**
 * A `json` column's value that jsonb could not hold (`\u0000`, a lone surrogate, a huge number) is
 * stored in the image as `{"$pgpubsub:json": text}` (trigger-sql.ts): parse that text as the driver
 * would have parsed the column.
 */
function rawJson(column: Column, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || column.getSQLType() !== 'json') return value;
  const keys = Object.keys(value);
  const raw = (value as Record<string, unknown>)[RAW_JSON_KEY];
  return keys.length === 1 && typeof raw === 'string' ? JSON.parse(raw) : value;
}

/**
 * SQLSTATEs that say the listener's role or the database's state, not the image, is at fault:
 * insufficient privilege, unknown schema, table or type. Never a reason to dead-letter.
 */
const ENVIRONMENT_ERRORS = new Set(['42501', '3F000', '42P01', '42704']);

/**
 * A claim or decode error caused by a missing grant (or a missing table/type), turned into a
 * retryable `PERMISSION_DENIED` error that names the grant to add; `undefined` for any other error.
 */
export function environmentError(
  decoder: RowDecoder,
  channel: string,
  error: unknown,
): PgPubSubError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !ENVIRONMENT_ERRORS.has(code)) return undefined;
  const message = (error as Error).message;
  const fix =
    code === '42501' || code === '3F000'
      ? `Grant it: GRANT USAGE ON SCHEMA ${quoteIdent(decoder.schema)} TO <the listener's role>; (docs/security.md, "The grants, exactly").`
      : `Check that the table exists and its migrations ran.`;
  return new PgPubSubError(
    'PERMISSION_DENIED',
    `Channel "${channel}": the listener cannot use the row type ${decoder.rowType} to decode its row images (${message}). ${fix} The notifications stay pending and are claimed again; none is dead-lettered for this.`,
    { cause: error },
  );
}
