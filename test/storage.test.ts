import { getTableConfig } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SCHEMA, notificationsTable, wakeupsTable } from '../src/storage/notifications.ts';
import { schedulesTable } from '../src/storage/schedules.ts';
import { useTestDatabase } from './support/db.ts';

// The storage has one definition with two spellings: the Drizzle tables (for typed queries) and the
// DDL of storageMigrationSql() (what `generate` writes). The template database was made by that DDL:
// this checks that the two agree, column by column.
const t = useTestDatabase();

type Column = { name: string; type: string; notNull: boolean; hasDefault: boolean; identity: boolean };

async function columnsInDatabase(table: string): Promise<Column[]> {
  const rows = await t.sql<
    { name: string; type: string; not_null: boolean; has_default: boolean; identity: boolean }[]
  >`
    SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
      a.atthasdef AS has_default, a.attidentity <> '' AS identity
    FROM pg_attribute a
    WHERE a.attrelid = ${`"${DEFAULT_SCHEMA}"."${table}"`}::regclass AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum`;
  return rows.map((r) => ({
    name: r.name,
    type: r.type,
    notNull: r.not_null,
    hasDefault: r.has_default,
    identity: r.identity,
  }));
}

function columnsInDrizzle(table: ReturnType<typeof getTableConfig>): Column[] {
  return table.columns.map((c) => {
    const identity = (c as unknown as { generatedIdentity?: unknown }).generatedIdentity !== undefined;
    return {
      name: c.name,
      type: c.getSQLType(),
      notNull: c.notNull,
      hasDefault: c.hasDefault && !identity,
      identity,
    };
  });
}

describe('storage: the Drizzle tables match the DDL', () => {
  for (const [name, table] of [
    ['notifications', notificationsTable(DEFAULT_SCHEMA)],
    ['wakeups', wakeupsTable(DEFAULT_SCHEMA)],
    ['schedules', schedulesTable(DEFAULT_SCHEMA)],
  ] as const) {
    it(`${name}: same columns, types, nullability, defaults and primary key`, async () => {
      const config = getTableConfig(table);
      expect(config.schema).toBe(DEFAULT_SCHEMA);
      expect(config.name).toBe(name);
      expect(columnsInDrizzle(config)).toEqual(await columnsInDatabase(name));
      const [pk] = await t.sql<{ columns: string[] }[]>`
        SELECT array_agg(a.attname ORDER BY a.attnum)::text[] AS columns
        FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = ${`"${DEFAULT_SCHEMA}"."${name}"`}::regclass AND i.indisprimary`;
      const primary = [
        ...config.columns.filter((c) => c.primary).map((c) => c.name),
        ...config.primaryKeys.flatMap((k) => k.columns.map((c) => c.name)),
      ];
      expect(pk?.columns).toEqual(primary);
    });
  }

  it('the indexes the Drizzle table declares exist', async () => {
    const config = getTableConfig(notificationsTable(DEFAULT_SCHEMA));
    const rows = await t.sql<{ name: string }[]>`
      SELECT indexname AS name FROM pg_indexes WHERE schemaname = ${DEFAULT_SCHEMA} AND tablename = 'notifications'`;
    const names = rows.map((r) => r.name);
    for (const index of config.indexes) expect(names).toContain(index.config.name);
  });
});
