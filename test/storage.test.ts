import { getTableConfig } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import {
  backfillsTable,
  DEFAULT_SCHEMA,
  notificationsTable,
  storageMigrationSql,
  wakeupsTable,
} from '../src/storage/notifications.ts';
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
    ['backfills', backfillsTable(DEFAULT_SCHEMA)],
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

describe('storage: version 3 upgrades to version 4', () => {
  it('an install whose op CHECK admits insert/update/delete only takes snapshot and truncate after the upgrade, keeping its rows', async () => {
    const schema = 'pgpubsub_v3';
    // What storage version 3 created: the same table with an unnamed column CHECK on "op".
    const v3 = storageMigrationSql(schema)
      .slice(
        0,
        storageMigrationSql(schema).findIndex((s) =>
          s.includes('DROP CONSTRAINT IF EXISTS "notifications_op_check"'),
        ),
      )
      .map((s) =>
        s
          .replace(`"op" text,`, `"op" text CHECK ("op" IN ('insert', 'update', 'delete')),`)
          .replace(
            `"status" text NOT NULL DEFAULT 'pending',`,
            `"status" text NOT NULL DEFAULT 'pending' CHECK ("status" IN ('pending', 'failed')),`,
          )
          .replace(/,\n {2}CONSTRAINT "notifications_check" CHECK \([^\n]*\)\n/, '\n'),
      );
    for (const statement of v3) await t.sql.unsafe(statement);
    await t.sql.unsafe(
      `INSERT INTO "${schema}"."notifications" ("channel", "op", "new") VALUES ('c', 'insert', '{}')`,
    );
    await expect(
      t.sql.unsafe(`INSERT INTO "${schema}"."notifications" ("channel", "op") VALUES ('c', 'truncate')`),
    ).rejects.toThrow(/notifications_op_check/);
    for (const statement of storageMigrationSql(schema)) await t.sql.unsafe(statement);
    await t.sql.unsafe(
      `INSERT INTO "${schema}"."notifications" ("channel", "op") VALUES ('c', 'truncate'), ('c', 'snapshot')`,
    );
    await expect(
      t.sql.unsafe(`INSERT INTO "${schema}"."notifications" ("channel", "op") VALUES ('c', 'upsert')`),
    ).rejects.toThrow(/notifications_check/);
    // Storage version 5: one CHECK instead of two (op, status), the status still checked.
    await expect(
      t.sql.unsafe(
        `INSERT INTO "${schema}"."notifications" ("channel", "op", "status") VALUES ('c', 'insert', 'done')`,
      ),
    ).rejects.toThrow(/notifications_check/);
    const checks = await t.sql.unsafe(
      `SELECT conname FROM pg_constraint WHERE conrelid = '"${schema}"."notifications"'::regclass AND contype = 'c' ORDER BY 1`,
    );
    expect(checks.map((r) => r.conname)).toEqual(['notifications_check']);
    const ops = await t.sql.unsafe(`SELECT "op" FROM "${schema}"."notifications" ORDER BY "id"`);
    expect(ops.map((r) => r.op)).toEqual(['insert', 'truncate', 'snapshot']);
    const [{ n }] = (await t.sql.unsafe(`SELECT count(*)::int AS n FROM "${schema}"."backfills"`)) as any;
    expect(n).toBe(0);
    // Applying it again (generate's idempotent DDL) changes nothing.
    for (const statement of storageMigrationSql(schema)) await t.sql.unsafe(statement);
  });
});
