/**
 * Property tests: random tables (random identifiers, random column types) and random custom payloads
 * go through the triggers / notify() and must come out of the listener exactly as Drizzle reads them.
 */
import { eq } from 'drizzle-orm';
import {
  bigint,
  boolean,
  customType,
  date,
  integer,
  jsonb,
  numeric,
  type PgColumnBuilderBase,
  pgEnum,
  pgSchema,
  pgTable,
  text,
  timestamp,
  uuid,
} from 'drizzle-orm/pg-core';
import fc from 'fast-check';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { channel, triggerChannel } from '../src/channel.ts';
import { quoteIdent, quoteLiteral } from '../src/identifiers.ts';
import { notify } from '../src/notify.ts';
import { createListener } from '../src/runtime/listener.ts';
import { createTriggerSql, dropTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';

// Extension types (issue 14 item 13): contrib ships with PostgreSQL, and both test servers have it.
const EXTENSIONS = ['hstore', 'citext', 'ltree', 'cube'];
const t = useTestDatabase(EXTENSIONS.map((e) => `CREATE EXTENSION IF NOT EXISTS ${e} SCHEMA public`));

// PROPERTY_SEED and PROPERTY_RUNS explore further than the suite's fixed, bounded run.
const SEED = Number(process.env.PROPERTY_SEED ?? 20240611);
const RUNS = Number(process.env.PROPERTY_RUNS ?? 80);

// ---------------------------------------------------------------------------------------------
// Identifiers: quotes, spaces, unicode, reserved words, exactly 63 bytes.

const RESERVED = ['select', 'order', 'user', 'table', 'group', 'from', 'where', 'limit', 'end', 'check'];

/** Cuts a string to at most 63 UTF-8 bytes without splitting a code point. */
function fit63(s: string): string {
  let out = '';
  for (const ch of s) {
    if (Buffer.byteLength(out + ch, 'utf8') > 63) break;
    out += ch;
  }
  return out;
}

const identPiece = fc.oneof(
  fc.constantFrom(...RESERVED, 'Mixed Case', 'a"b', '"', '""', "it's", 'x y', ' lead', 'trail ', ';--', '$1'),
  fc.constantFrom('ünïcödé', '名前', '🐘', 'é', 'Ω', 'DROP TABLE canary', '\\', '%s', '{}'),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
);

/** A valid quoted identifier: 1–63 bytes, no NUL. */
const identifier = fc
  .oneof(
    { weight: 4, arbitrary: fc.array(identPiece, { minLength: 1, maxLength: 3 }).map((p) => p.join('')) },
    // Exactly 63 bytes, sometimes with multi-byte characters at the edge.
    {
      weight: 1,
      arbitrary: fc.constantFrom('é', 'a', '🐘', '"').map((c) => fit63(c.repeat(64)).padEnd(63, 'z')),
    },
  )
  .map((s) => fit63(s.replaceAll('\u0000', '')))
  .filter((s) => s.length > 0 && Buffer.byteLength(s) <= 63);

/** Channel names additionally refuse control characters and leading/trailing spaces. */
const channelName = identifier
  .map((s) => s.trim())
  // biome-ignore lint/suspicious/noControlCharactersInRegex: filtering them out
  .filter((s) => s.length > 0 && !/[\u0000-\u001f\u007f]/.test(s));

// ---------------------------------------------------------------------------------------------
// Column kinds: the Drizzle builder, the SQL type and a value generator for each.

interface Kind {
  name: string;
  sqlType: (enumType: string) => string;
  build: (db: string, enumRef: ((name: string) => PgColumnBuilderBase) | undefined) => PgColumnBuilderBase;
  value: (labels: readonly string[]) => fc.Arbitrary<unknown>;
  /** Usable as a primary key. */
  key?: boolean;
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');
const dateArb = fc.date({
  min: new Date('1000-01-01T00:00:00Z'),
  max: new Date('9999-12-31T23:59:59Z'),
  noInvalidDate: true,
});
const micros = fc.integer({ min: 0, max: 999_999 });
const stamp = fc.tuple(dateArb, micros).map(([d, us]) => {
  const day = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`;
  return `${day} ${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(us, 6)}`;
});
const dayString = dateArb.map((d) => d.toISOString().slice(0, 10));
const textValue = fc
  .oneof(
    fc.string({ unit: 'grapheme', maxLength: 30 }),
    fc.constantFrom("'); DROP TABLE canary; --", '"quoted"', 'back\\slash', '{a,b}', 'NULL', '', ' ', '\t\n'),
  )
  .filter((s) => !s.includes('\u0000'));
const int32 = fc.integer({ min: -2147483648, max: 2147483647 });
const bigDigits = fc.tuple(
  fc.boolean(),
  fc.stringMatching(/^[1-9][0-9]{29,39}$/),
  fc.option(fc.stringMatching(/^[0-9]{1,12}$/), { nil: undefined }),
);
const jsonValue = fc
  .jsonValue({ maxDepth: 3, stringUnit: 'grapheme' })
  .filter((j) => !JSON.stringify(j).includes('\\u0000'));

const KINDS: Kind[] = [
  { name: 'integer', sqlType: () => 'integer', build: (n) => integer(n), value: () => int32, key: true },
  {
    name: 'bigint(number)',
    sqlType: () => 'bigint',
    build: (n) => bigint(n, { mode: 'number' }),
    value: () => fc.maxSafeInteger(),
  },
  {
    name: 'bigint(bigint)',
    sqlType: () => 'bigint',
    build: (n) => bigint(n, { mode: 'bigint' }),
    value: () => fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n),
    key: true,
  },
  {
    name: 'numeric',
    sqlType: () => 'numeric',
    build: (n) => numeric(n),
    value: () =>
      fc.oneof(
        { weight: 8, arbitrary: bigDigits.map(([neg, i, f]) => `${neg ? '-' : ''}${i}${f ? `.${f}` : ''}`) },
        {
          weight: 1,
          arbitrary: fc.constantFrom('0', '0.000000000000000000000000000001', 'NaN', 'Infinity', '-Infinity'),
        },
      ),
  },
  { name: 'text', sqlType: () => 'text', build: (n) => text(n), value: () => textValue, key: true },
  { name: 'boolean', sqlType: () => 'boolean', build: (n) => boolean(n), value: () => fc.boolean() },
  {
    name: 'timestamp(string)',
    sqlType: () => 'timestamp(6)',
    build: (n) => timestamp(n, { mode: 'string', precision: 6 }),
    value: () =>
      fc.oneof(
        { weight: 9, arbitrary: stamp },
        { weight: 1, arbitrary: fc.constantFrom('infinity', '-infinity') },
      ),
  },
  {
    name: 'timestamp(date)',
    sqlType: () => 'timestamp(6)',
    build: (n) => timestamp(n, { mode: 'date', precision: 6 }),
    value: () => dateArb,
  },
  {
    name: 'timestamptz(string)',
    sqlType: () => 'timestamptz(6)',
    build: (n) => timestamp(n, { mode: 'string', precision: 6, withTimezone: true }),
    value: () => stamp.map((s) => `${s}+00`),
  },
  {
    name: 'timestamptz(date)',
    sqlType: () => 'timestamptz(6)',
    build: (n) => timestamp(n, { mode: 'date', precision: 6, withTimezone: true }),
    value: () => dateArb,
  },
  {
    name: 'date(string)',
    sqlType: () => 'date',
    build: (n) => date(n, { mode: 'string' }),
    value: () => dayString,
  },
  {
    name: 'date(date)',
    sqlType: () => 'date',
    build: (n) => date(n, { mode: 'date' }),
    value: () => dayString.map((d) => new Date(`${d}T00:00:00Z`)),
  },
  // A top-level JSON null is stored as SQL NULL by Drizzle: only nullable columns get it (via option()).
  {
    name: 'jsonb',
    sqlType: () => 'jsonb',
    build: (n) => jsonb(n),
    value: () => jsonValue.filter((j) => j !== null),
  },
  {
    name: 'text[]',
    sqlType: () => 'text[]',
    build: (n) => text(n).array(),
    value: () => fc.array(textValue, { maxLength: 4 }),
  },
  {
    name: 'integer[]',
    sqlType: () => 'integer[]',
    build: (n) => integer(n).array(),
    value: () => fc.array(int32, { maxLength: 4 }),
  },
  { name: 'uuid', sqlType: () => 'uuid', build: (n) => uuid(n), value: () => fc.uuid(), key: true },
  {
    name: 'enum',
    sqlType: (enumType) => enumType,
    build: (n, e) => e!(n),
    value: (labels) => fc.constantFrom(...labels),
  },
];
/** An extension type read as text, which is what `db.select()` returns for it. */
const asText = (type: string) => (n: string) =>
  customType<{ data: string; driverData: string }>({ dataType: () => type })(n);
/** hstore's text form of a key or value. */
const hq = (s: string) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
const coord = fc.integer({ min: -4000, max: 4000 }).map((n) => n / 4);
KINDS.push(
  {
    name: 'hstore',
    sqlType: () => 'public.hstore',
    build: asText('hstore'),
    value: () =>
      fc.dictionary(textValue, fc.option(textValue, { nil: null }), { maxKeys: 4 }).map((d) =>
        Object.entries(d)
          .map(([k, v]) => `${hq(k)}=>${v === null ? 'NULL' : hq(v)}`)
          .join(', '),
      ),
  },
  {
    name: 'citext',
    sqlType: () => 'public.citext',
    build: asText('citext'),
    value: () => textValue,
    key: true,
  },
  {
    name: 'ltree',
    sqlType: () => 'public.ltree',
    build: asText('ltree'),
    value: () => fc.array(fc.stringMatching(/^[A-Za-z0-9_]{1,8}$/), { maxLength: 4 }).map((l) => l.join('.')),
  },
  {
    name: 'cube',
    sqlType: () => 'public.cube',
    build: asText('cube'),
    value: () => fc.array(coord, { minLength: 1, maxLength: 3 }).map((c) => `(${c.join(', ')})`),
  },
);
const KEY_KINDS = KINDS.filter((k) => k.key);

interface ColumnSpec {
  kind: Kind;
  dbName: string;
  nullable: boolean;
}

interface TableSpec {
  schema: string | null;
  table: string;
  /** Names of the two hash partitions, or null for a plain table. */
  partitions: [string, string] | null;
  channel: string;
  enumName: string;
  labels: string[];
  key: ColumnSpec;
  columns: ColumnSpec[];
}

const enumLabels = fc.uniqueArray(
  textValue.filter((s) => s.length > 0 && Buffer.byteLength(s) <= 63),
  { minLength: 1, maxLength: 4 },
);

const tableSpec: fc.Arbitrary<TableSpec> = fc
  .record({
    schema: fc.option(
      identifier.filter(
        (s) => !s.startsWith('pg_') && !['public', 'pgpubsub', 'information_schema'].includes(s),
      ),
      { nil: null },
    ),
    table: identifier,
    channel: channelName,
    enumName: identifier,
    labels: enumLabels,
    key: fc.constantFrom(...KEY_KINDS),
    kinds: fc.array(fc.record({ kind: fc.constantFrom(...KINDS), nullable: fc.boolean() }), {
      minLength: 1,
      maxLength: 7,
    }),
    names: fc.uniqueArray(identifier, { minLength: 8, maxLength: 8 }),
    partitioned: fc.boolean(),
  })
  .map((r) => ({
    ...r,
    partitions: r.partitioned ? ([fit63(`${r.table} p0`), fit63(`${r.table} p1`)] as [string, string]) : null,
  }))
  // Tables and types share a namespace.
  .filter(
    (r) =>
      r.enumName !== r.table &&
      (r.partitions === null ||
        (!r.partitions.includes(r.enumName) &&
          !r.partitions.includes(r.table) &&
          r.partitions[0] !== r.partitions[1])),
  )
  .map((r) => ({
    schema: r.schema,
    table: r.table,
    partitions: r.partitions,
    channel: r.channel,
    enumName: r.enumName,
    labels: r.labels,
    key: { kind: r.key, dbName: r.names[0]!, nullable: false },
    columns: r.kinds.map((k, i) => ({ kind: k.kind, dbName: r.names[i + 1]!, nullable: k.nullable })),
  }));

function columnValue(col: ColumnSpec, labels: string[]): fc.Arbitrary<unknown> {
  const base = col.kind.value(labels);
  return col.nullable ? fc.option(base, { nil: null, freq: 4 }) : base;
}

/** Rows (unique keys), then updates (row index + new values) and deletes (row indexes). */
function scenario(spec: TableSpec) {
  const keyOf = (value: unknown) => (typeof value === 'bigint' ? `n${value}` : JSON.stringify(value));
  const valuesArb = fc.tuple(...spec.columns.map((c) => columnValue(c, spec.labels)));
  return fc
    .uniqueArray(spec.key.kind.value(spec.labels), { minLength: 1, maxLength: 4, selector: keyOf })
    .chain((keys) =>
      fc.record({
        rows: fc.tuple(...keys.map((k) => valuesArb.map((vals) => [k, ...vals] as unknown[]))),
        updates: fc.array(fc.tuple(fc.nat(keys.length - 1), valuesArb), { maxLength: 3 }),
        deletes: fc.uniqueArray(fc.nat(keys.length - 1), { maxLength: 2 }),
      }),
    );
}

function createSql(spec: TableSpec): string[] {
  const schema = spec.schema ?? 'public';
  const enumType = `${quoteIdent(schema)}.${quoteIdent(spec.enumName)}`;
  const cols = [spec.key, ...spec.columns].map(
    (c, i) =>
      `${quoteIdent(c.dbName)} ${c.kind.sqlType(enumType)}${i === 0 ? ' PRIMARY KEY' : c.nullable ? '' : ' NOT NULL'}`,
  );
  const parent = `${quoteIdent(schema)}.${quoteIdent(spec.table)}`;
  return [
    ...(spec.schema ? [`CREATE SCHEMA ${quoteIdent(spec.schema)}`] : []),
    `CREATE TYPE ${enumType} AS ENUM (${spec.labels.map(quoteLiteral).join(', ')})`,
    `CREATE TABLE ${parent} (${cols.join(', ')})${spec.partitions ? ` PARTITION BY HASH (${quoteIdent(spec.key.dbName)})` : ''}`,
    ...(spec.partitions ?? []).map(
      (p, i) =>
        `CREATE TABLE ${quoteIdent(schema)}.${quoteIdent(p)} PARTITION OF ${parent} FOR VALUES WITH (MODULUS 2, REMAINDER ${i})`,
    ),
  ];
}

function dropSql(spec: TableSpec): string[] {
  const schema = spec.schema ?? 'public';
  return spec.schema
    ? [`DROP SCHEMA ${quoteIdent(spec.schema)} CASCADE`]
    : [
        `DROP TABLE ${quoteIdent(schema)}.${quoteIdent(spec.table)}`,
        `DROP TYPE ${quoteIdent(schema)}.${quoteIdent(spec.enumName)}`,
      ];
}

function drizzleTable(spec: TableSpec, name = spec.table) {
  const labels = spec.labels as [string, ...string[]];
  const enumRef = (spec.schema
    ? pgSchema(spec.schema).enum(spec.enumName, labels)
    : pgEnum(spec.enumName, labels)) as unknown as (name: string) => PgColumnBuilderBase;
  const columns: Record<string, PgColumnBuilderBase> = {
    key: (spec.key.kind.build(spec.key.dbName, enumRef) as any).primaryKey(),
  };
  spec.columns.forEach((c, i) => {
    const builder = c.kind.build(c.dbName, enumRef) as any;
    columns[`c${i}`] = c.nullable ? builder : builder.notNull();
  });
  return spec.schema ? pgSchema(spec.schema).table(name, columns) : pgTable(name, columns);
}

describe('properties', () => {
  it(
    'trigger events decode to exactly what db.select() returns, for random tables and identifiers',
    async () => {
      let runs = 0;
      let partitioned = 0;
      const kindsSeen = new Set<string>();
      const identifiersSeen: string[] = [];
      await fc.assert(
        fc.asyncProperty(
          tableSpec.chain((spec) => scenario(spec).map((s) => ({ spec, ...s }))),
          async ({ spec, rows, updates, deletes }) => {
            runs++;
            if (spec.partitions) partitioned++;
            for (const c of [spec.key, ...spec.columns]) kindsSeen.add(c.kind.name);
            identifiersSeen.push(
              spec.table,
              spec.channel,
              ...[spec.key, ...spec.columns].map((c) => c.dbName),
            );
            const table = drizzleTable(spec) as any;
            const ch = triggerChannel(table, { on: ['insert', 'update', 'delete'], name: spec.channel });
            const triggers = createTriggerSql(resolveTriggerSpec(ch));
            for (const s of [...createSql(spec), ...triggers]) await t.sql.unsafe(s);
            try {
              const keyCol = table.key;
              const toRow = (vals: unknown[]) => {
                const row: Record<string, unknown> = { key: vals[0] };
                spec.columns.forEach((_, i) => {
                  row[`c${i}`] = vals[i + 1];
                });
                return row;
              };
              const selectOne = async (key: unknown) =>
                (await t.db.select().from(table).where(eq(keyCol, key)))[0];
              const expected: { op: string; old: unknown; new: unknown }[] = [];

              // A partitioned table: rows of odd index are written through the partitions (each
              // statement names both: one matches), the others through the parent.
              const parts = (spec.partitions ?? []).map((p) => drizzleTable(spec, p) as any);
              const direct = (index: number) => parts.length > 0 && index % 2 === 1;
              const viaParent = rows.filter((_, i) => !direct(i));
              if (viaParent.length > 0) await t.db.insert(table).values(viaParent.map(toRow));
              for (const [i, r] of rows.entries()) {
                if (!direct(i)) continue;
                const [[key]] = (await t.sql
                  .unsafe(
                    `SELECT satisfies_hash_partition(${quoteLiteral(`${quoteIdent(spec.schema ?? 'public')}.${quoteIdent(spec.table)}`)}::regclass, 2, 0, $1::${spec.key.kind.sqlType('')})`,
                    [typeof r[0] === 'bigint' ? String(r[0]) : (r[0] as any)],
                  )
                  .values()) as unknown as [[boolean]];
                await t.db.insert(parts[key ? 0 : 1]).values(toRow(r));
              }
              for (const r of rows) expected.push({ op: 'insert', old: null, new: await selectOne(r[0]) });
              for (const [index, vals] of updates) {
                const key = rows[index]![0];
                const before = await selectOne(key);
                for (const target of direct(index) ? parts : [table]) {
                  await t.db
                    .update(target)
                    .set(toRow([key, ...vals]))
                    .where(eq(target.key, key));
                }
                expected.push({ op: 'update', old: before, new: await selectOne(key) });
              }
              for (const index of deletes) {
                const key = rows[index]![0];
                const before = await selectOne(key);
                for (const target of direct(index) ? parts : [table])
                  await t.db.delete(target).where(eq(target.key, key));
                expected.push({ op: 'delete', old: before, new: null });
              }

              const seen: { op: string; old: unknown; new: unknown }[] = [];
              const summary = await createListener(t.db)
                .on(ch, (e) => void seen.push({ op: e.op, old: e.old, new: e.new }))
                .drain();
              expect(summary).toMatchObject({ processed: expected.length, dead: 0, retried: 0 });
              // One statement inserts all rows: compare inserts as a set (transition-table order), the rest in order.
              const byKey = (a: any, b: any) => (String(a.new?.key) < String(b.new?.key) ? -1 : 1);
              const inserts = rows.length;
              expect(seen.slice(0, inserts).sort(byKey)).toEqual(expected.slice(0, inserts).sort(byKey));
              expect(seen.slice(inserts)).toEqual(expected.slice(inserts));
            } finally {
              for (const s of dropTriggerSql(resolveTriggerSpec(ch))) await t.sql.unsafe(s);
              for (const s of dropSql(spec)) await t.sql.unsafe(s);
              await t.sql`DELETE FROM pgpubsub.notifications`;
            }
          },
        ),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
      expect(runs).toBeGreaterThanOrEqual(RUNS);
      expect(partitioned).toBeGreaterThan(RUNS / 4);
      // The seed must cover every column kind and every kind of awkward identifier.
      expect([...kindsSeen].sort()).toEqual(KINDS.map((k) => k.name).sort());
      const has = (test: (s: string) => boolean) => identifiersSeen.some(test);
      expect(has((s) => s.includes('"'))).toBe(true);
      expect(has((s) => s.includes(' '))).toBe(true);
      expect(has((s) => Buffer.byteLength(s) !== s.length)).toBe(true);
      expect(has((s) => Buffer.byteLength(s) === 63)).toBe(true);
      expect(has((s) => RESERVED.includes(s))).toBe(true);
    },
    Math.max(60_000, RUNS * 1000),
  );

  // -------------------------------------------------------------------------------------------
  // Custom payloads: a random valibot schema and a value that matches it.

  type Shape =
    | { t: 'string' | 'number' | 'integer' | 'boolean' }
    | { t: 'nullable'; of: Shape }
    | { t: 'array'; of: Shape }
    | { t: 'object'; fields: [string, Shape][] };

  const key = fc
    .oneof(
      fc.string({ unit: 'grapheme', maxLength: 8 }),
      fc.constantFrom('a b', 'x"y', "o'k", '🐘', 'constructor'),
    )
    .filter((k) => k !== '__proto__' && !k.includes('\u0000'));
  const { shape } = fc.letrec<{ shape: Shape }>((tie) => ({
    shape: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constantFrom<Shape>({ t: 'string' }, { t: 'number' }, { t: 'integer' }, { t: 'boolean' }),
      fc.record({ t: fc.constant('nullable' as const), of: tie('shape') }),
      fc.record({ t: fc.constant('array' as const), of: tie('shape') }),
      fc.record({
        t: fc.constant('object' as const),
        fields: fc.uniqueArray(fc.tuple(key, tie('shape')), { maxLength: 4, selector: ([k]) => k }),
      }),
    ),
  }));

  function schemaOf(s: Shape): v.GenericSchema {
    switch (s.t) {
      case 'string':
        return v.string();
      case 'number':
        return v.number();
      case 'integer':
        return v.pipe(v.number(), v.integer());
      case 'boolean':
        return v.boolean();
      case 'nullable':
        return v.nullable(schemaOf(s.of));
      case 'array':
        return v.array(schemaOf(s.of));
      case 'object':
        return v.object(Object.fromEntries(s.fields.map(([k, f]) => [k, schemaOf(f)])));
    }
  }

  const finite = fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0));
  function valueArb(s: Shape): fc.Arbitrary<unknown> {
    switch (s.t) {
      case 'string':
        return fc
          .oneof(textValue, fc.string({ unit: 'grapheme', minLength: 2000, maxLength: 3000 }))
          .filter((x) => !x.includes('\u0000'));
      case 'number':
        return fc.oneof(finite, fc.constantFrom(5e-324, 1.7976931348623157e308, 2 ** 53 + 2, 0.1));
      case 'integer':
        return fc.oneof(
          fc.maxSafeInteger(),
          fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER),
        );
      case 'boolean':
        return fc.boolean();
      case 'nullable':
        return fc.option(valueArb(s.of), { nil: null });
      case 'array':
        return fc.array(valueArb(s.of), { maxLength: 3 });
      case 'object':
        return fc.record(Object.fromEntries(s.fields.map(([k, f]) => [k, valueArb(f)])));
    }
  }

  it(
    'random payloads round-trip through notify() and the handler unchanged',
    async () => {
      let n = 0;
      await fc.assert(
        fc.asyncProperty(
          shape.chain((s) => fc.tuple(fc.constant(s), fc.array(valueArb(s), { minLength: 1, maxLength: 3 }))),
          async ([s, values]) => {
            const ch = channel(`payload_${n++}`, schemaOf(s));
            await t.db.transaction(async (tx) => {
              for (const value of values) await notify(tx, ch, Array.isArray(value) ? [value] : value); // an array is a bulk send (docs/jobs.md)
            });
            const got: unknown[] = [];
            const summary = await createListener(t.db)
              .on(ch, (e) => void got.push(e.payload))
              .drain();
            expect(summary).toMatchObject({ processed: values.length, dead: 0 });
            expect(got).toEqual(values);
            expect(await countNotifications(t.sql, ch.name)).toEqual({ pending: 0, failed: 0 });
          },
        ),
        { numRuns: RUNS + 20, seed: SEED, endOnFailure: true },
      );
    },
    Math.max(30_000, RUNS * 500),
  );
});
