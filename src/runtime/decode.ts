import { getTableColumns } from 'drizzle-orm';
import type { Column } from 'drizzle-orm/column';
import { getTableConfig, type PgTable } from 'drizzle-orm/pg-core';
import { qualify, quoteIdent } from '../identifiers.ts';
import { RAW_JSON_KEY } from '../storage/trigger-sql.ts';

/** How to read one table's row images back into `typeof table.$inferSelect` values. */
export interface RowDecoder {
  /** `jsonb_populate_record` target type, e.g. `"public"."authors"`. */
  rowType: string;
  /** JS key, database name and Drizzle column of each column, in a fixed order. */
  columns: { key: string; dbName: string; column: Column }[];
}

/**
 * Builds the decoder of a table. `casing` is the Drizzle database's own casing cache, so column
 * names resolve exactly as `db.select()` resolves them.
 */
export function rowDecoder(table: PgTable, casing: { getColumnCasing(column: Column): string }): RowDecoder {
  const config = getTableConfig(table);
  return {
    rowType: qualify(config.schema, config.name),
    columns: Object.entries(getTableColumns(table) as Record<string, Column>).map(([key, column]) => ({
      key,
      dbName: casing.getColumnCasing(column),
      column,
    })),
  };
}

/**
 * SQL select list that expands a row image (a jsonb column of `source`) into the table's columns,
 * typed by PostgreSQL itself through `jsonb_populate_record`: bigint, numeric, timestamps and arrays
 * keep full fidelity, unknown keys are ignored and missing ones are NULL.
 */
export function expandImageSql(decoder: RowDecoder, alias: string): string {
  return decoder.columns.map((c) => `${quoteIdent(alias)}.${quoteIdent(c.dbName)}`).join(', ');
}

/** The lateral join that produces `alias` from the image in `expression`. */
export function populateSql(decoder: RowDecoder, expression: string, alias: string): string {
  return `LEFT JOIN LATERAL jsonb_populate_record(NULL::${decoder.rowType}, ${expression}) AS ${quoteIdent(alias)} ON true`;
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
    row[c.key] = value === null || value === undefined ? null : c.column.mapFromDriverValue(value);
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
