/**
 * Issue 14, the trigger side: what a watched table's owner, its writers or a hostile role can do to
 * the generated trigger functions. Each test names the defect it guards against (docs/guarantees.md and
 * docs/security.md cite these names).
 */
import { randomBytes } from 'node:crypto';
import { doublePrecision, integer, interval, json, pgTable, point, text } from 'drizzle-orm/pg-core';
import { afterAll, describe, expect, it } from 'vitest';
import { columnNamer } from '../src/casing.ts';
import { triggerChannel } from '../src/channel.ts';
import { planGenerate } from '../src/generate/plan.ts';
import { expandImageSql, mapRow, populateSql, rowDecoder } from '../src/runtime/decode.ts';
import { STORAGE_VERSION } from '../src/storage/notifications.ts';
import { createTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { useTestDatabase } from './support/db.ts';
import { HEAVY } from './support/heavy.ts';

const t = useTestDatabase([
  `CREATE TABLE settings_t (id int PRIMARY KEY, iv interval, f float8, b bytea, ts timestamptz, d date, r tsrange, arr timestamptz[])`,
  `CREATE TABLE newold (id int PRIMARY KEY, new text, old text)`,
  `CREATE TABLE geo (id int PRIMARY KEY, j json, p point, label text)`,
  `CREATE TABLE docs (id int PRIMARY KEY, j json, body text)`,
  `CREATE TABLE secret (id int PRIMARY KEY, v text)`,
]);

async function install(statements: string[]) {
  for (const s of statements) await t.sql.unsafe(s);
}
const images = (channel: string) =>
  t.sql`SELECT op, old, new, status, last_error FROM pgpubsub.notifications WHERE channel = ${channel} ORDER BY id`;

const settingsT = pgTable('settings_t', {
  id: integer().primaryKey(),
  iv: interval(),
  f: doublePrecision(),
});
const newold = pgTable('newold', { id: integer().primaryKey(), new: text(), old: text() });
const geo = pgTable('geo', { id: integer().primaryKey(), j: json(), p: point(), label: text() });
const docs = pgTable('docs', { id: integer().primaryKey(), j: json(), body: text() });
const secret = pgTable('secret', { id: integer().primaryKey(), v: text() });

describe('producer session settings (issue 14 item 17)', () => {
  it('images do not depend on the writing session: IntervalStyle, DateStyle, extra_float_digits, TimeZone, bytea_output', async () => {
    const ch = triggerChannel(settingsT, { on: ['insert', 'update', 'delete'], name: 'settings' });
    await install(createTriggerSql(resolveTriggerSpec(ch)));
    const values = `'-1 day -2 hours', 0.1::float8 + 0.2, '\\x00ff', '2024-03-01 10:00:00+00', '2024-03-01', '[2024-01-01 10:00, 2024-01-02)', ARRAY['2024-03-01 10:00:00+00'::timestamptz]`;
    const odd = t.client({
      max: 1,
      connection: {
        IntervalStyle: 'sql_standard',
        DateStyle: 'SQL, DMY',
        extra_float_digits: '-3',
        TimeZone: 'Asia/Kolkata',
        bytea_output: 'escape',
      },
    });
    await t.sql.unsafe(`INSERT INTO settings_t VALUES (1, ${values})`);
    await odd.unsafe(`INSERT INTO settings_t VALUES (2, ${values})`);
    await t.sql.unsafe(`UPDATE settings_t SET iv = iv WHERE id = 1`);
    await odd.unsafe(`UPDATE settings_t SET iv = iv WHERE id = 2`);
    const rows = await images('settings');
    const strip = (img: Record<string, unknown> | null) => img && { ...img, id: 0 };
    expect(rows).toHaveLength(4);
    expect(strip(rows[1]!.new)).toEqual(strip(rows[0]!.new));
    expect(strip(rows[3]!.new)).toEqual(strip(rows[2]!.new));
    expect(strip(rows[3]!.old)).toEqual(strip(rows[2]!.old));
    expect(rows[1]!.new.iv).toBe('-1 days -02:00:00');
  });
});

describe('columns named new and old (issue 14 item 10)', () => {
  it('a column named new or old does not replace the row image, and when still reads new.col', async () => {
    const ch = triggerChannel(newold, {
      on: ['insert', 'update', 'delete'],
      when: `new.new IS DISTINCT FROM 'skip' OR old.old IS NOT NULL`,
    });
    await install(createTriggerSql(resolveTriggerSpec(ch)));
    await t.sql`INSERT INTO newold VALUES (1, 'n', 'o'), (2, 'skip', NULL)`;
    await t.sql`UPDATE newold SET new = 'n2' WHERE id = 1`;
    await t.sql`DELETE FROM newold WHERE id = 1`;
    expect((await images('newold')).map((r) => [r.op, r.old, r.new])).toEqual([
      ['insert', null, { id: 1, new: 'n', old: 'o' }],
      ['update', { id: 1, new: 'n', old: 'o' }, { id: 1, new: 'n2', old: 'o' }],
      ['delete', { id: 1, new: 'n2', old: 'o' }, null],
    ]);
  });
});

describe('columns without an equality operator (issue 14 item 9)', () => {
  it('columns: [json, point] compares values without "=" and updates succeed', async () => {
    const ch = triggerChannel(geo, { on: ['update'], columns: ['j', 'p'] });
    await install(createTriggerSql(resolveTriggerSpec(ch)));
    await t.sql`INSERT INTO geo VALUES (1, '{"a":1}', '(1,2)', 'x')`;
    await t.sql`UPDATE geo SET j = '{"a":1}', p = '(1,2)', label = 'y'`; // same values: no event
    await t.sql`UPDATE geo SET j = '{"a":2}'`;
    await t.sql`UPDATE geo SET p = '(3,4)'`;
    expect((await images('geo')).map((r) => [r.new.j, r.new.p])).toEqual([
      [{ a: 2 }, '(1,2)'],
      [{ a: 2 }, '(3,4)'],
    ]);
  });
});

describe('values jsonb cannot hold (issue 14 item 8)', () => {
  const hostile = [
    String.raw`{"nul":"a\u0000b"}`,
    String.raw`{"lone":"\ud800"}`,
    '{"huge":1e1000000}',
    String.raw`{"pair":"\ud83d\ude00"}`,
  ];
  it('a json value with \\u0000, a lone surrogate or a huge number: the write commits and the image is lossless', async () => {
    const ch = triggerChannel(docs, { on: ['insert', 'update', 'delete'] });
    await install(createTriggerSql(resolveTriggerSpec(ch)));
    for (const [i, j] of hostile.entries()) {
      await t.sql`INSERT INTO docs VALUES (${i + 1}, ${j}::json, 'b')`;
      await t.sql`UPDATE docs SET body = 'c' WHERE id = ${i + 1}`;
    }
    await t.sql`DELETE FROM docs`;
    const rows = await images('docs');
    expect(rows.map((r) => r.status)).toEqual(Array(hostile.length * 3).fill('pending'));
    // The decoder reads every image back to the json text the table held.
    const d = rowDecoder(docs, columnNamer(undefined));
    const decoded = await t.sql
      .unsafe(
        `SELECT c.op, ${expandImageSql(d, 'o')}, ${expandImageSql(d, 'n')} FROM pgpubsub.notifications c ${populateSql(d, 'c."old"', 'o')} ${populateSql(d, 'c."new"', 'n')} WHERE c.channel = 'docs' ORDER BY c.id`,
      )
      .values();
    const jsonOf = (row: unknown[], side: 'old' | 'new') => {
      const offset = side === 'old' ? 1 : 4;
      return mapRow(d, row, offset).j;
    };
    hostile.forEach((j, i) => {
      const expected = JSON.parse(j);
      expect(jsonOf(decoded[i * 2]!, 'new')).toEqual(expected);
      expect(jsonOf(decoded[i * 2 + 1]!, 'old')).toEqual(expected);
      expect(jsonOf(decoded[i * 2 + 1]!, 'new')).toEqual(expected);
      expect(jsonOf(decoded[hostile.length * 2 + i]!, 'old')).toEqual(expected);
    });
  });

  it.runIf(HEAVY)(
    'a text value over 256 MB: the write commits and a failed notification says why',
    async () => {
      const ch = triggerChannel(docs, { on: ['insert', 'update', 'delete'], name: 'docs_big' });
      await install(createTriggerSql(resolveTriggerSpec(ch)));
      await t.sql`INSERT INTO docs VALUES (100, NULL, repeat('x', 270000000))`;
      await t.sql`UPDATE docs SET j = '1' WHERE id = 100`;
      await t.sql`DELETE FROM docs WHERE id = 100`;
      const rows =
        await t.sql`SELECT op, status, last_error, old IS NULL AS no_old, new IS NULL AS no_new FROM pgpubsub.notifications WHERE channel = 'docs_big' ORDER BY id`;
      expect(rows.map((r) => [r.op, r.status, r.no_old, r.no_new])).toEqual([
        ['insert', 'failed', true, true],
        ['update', 'failed', true, true],
        ['delete', 'failed', true, true],
      ]);
      expect(rows[0]!.last_error).toMatch(/row image.*too large/i);
    },
    300_000,
  );
});

describe('forged events (issue 14 item 1)', () => {
  const role = `pgpubsub_sender_${randomBytes(3).toString('hex')}`;
  afterAll(async () => {
    await t.sql.unsafe(`DROP OWNED BY ${role}`).catch(() => {});
    await t.sql.unsafe(`DROP ROLE IF EXISTS ${role}`);
  });

  it('a role with only the sender grants cannot attach a channel function to its own table', async () => {
    const ch = triggerChannel(secret, { on: ['insert', 'update', 'delete'] });
    await install(createTriggerSql(resolveTriggerSpec(ch)));
    await t.sql.unsafe(`CREATE ROLE ${role} NOSUPERUSER NOCREATEDB NOCREATEROLE`);
    await t.sql.unsafe(`GRANT USAGE ON SCHEMA pgpubsub TO ${role}`);
    await t.sql.unsafe(`GRANT EXECUTE ON FUNCTION pgpubsub.notify(text, jsonb) TO ${role}`);
    const forge = t.sql.begin(async (tx) => {
      await tx.unsafe(`SET LOCAL ROLE ${role}`);
      await tx.unsafe(`CREATE TEMP TABLE secret (id int PRIMARY KEY, v text)`);
      await tx.unsafe(
        `CREATE TRIGGER forge AFTER INSERT ON pg_temp.secret REFERENCING NEW TABLE AS pgpubsub_new FOR EACH STATEMENT EXECUTE FUNCTION pgpubsub.ch_secret()`,
      );
      await tx.unsafe(`INSERT INTO pg_temp.secret VALUES (1, 'forged')`);
    });
    await expect(forge).rejects.toThrow(/permission denied for function (pgpubsub\.)?ch_secret/);
    expect(await images('secret')).toEqual([]);
  });

  it('attached to another table anyway (EXECUTE granted by mistake), the function refuses to record', async () => {
    await t.sql.unsafe(`GRANT EXECUTE ON FUNCTION pgpubsub.ch_secret() TO ${role}`);
    const forge = t.sql.begin(async (tx) => {
      await tx.unsafe(`SET LOCAL ROLE ${role}`);
      await tx.unsafe(`CREATE TEMP TABLE secret2 (id int PRIMARY KEY, v text)`);
      await tx.unsafe(
        `CREATE TRIGGER forge AFTER INSERT ON pg_temp.secret2 REFERENCING NEW TABLE AS pgpubsub_new FOR EACH STATEMENT EXECUTE FUNCTION pgpubsub.ch_secret()`,
      );
      await tx.unsafe(`INSERT INTO pg_temp.secret2 VALUES (1, 'forged')`);
    });
    await expect(forge).rejects.toThrow(/generated for table "public"."secret"/);
    expect(await images('secret')).toEqual([]);
    // The real table still records.
    await t.sql`INSERT INTO secret VALUES (1, 'real')`;
    expect((await images('secret')).map((r) => r.new)).toEqual([{ id: 1, v: 'real' }]);
  });
});

describe('renamed tables keep their events (issue 14 item 1, docs/channels.md)', () => {
  it('a watched table renamed or moved to another schema still records, with no migration in between', async () => {
    await t.sql.unsafe(`CREATE TABLE renamed_src (id int PRIMARY KEY, v text)`);
    const src = pgTable('renamed_src', { id: integer().primaryKey(), v: text() });
    await install(
      createTriggerSql(resolveTriggerSpec(triggerChannel(src, { on: ['insert'], name: 'renamed' }))),
    );
    await t.sql.unsafe(`ALTER TABLE renamed_src RENAME TO renamed_dst`);
    await t.sql.unsafe(`INSERT INTO renamed_dst VALUES (1, 'after rename')`);
    await t.sql.unsafe(`CREATE SCHEMA IF NOT EXISTS moved`);
    await t.sql.unsafe(`ALTER TABLE renamed_dst SET SCHEMA moved`);
    await t.sql.unsafe(`INSERT INTO moved.renamed_dst VALUES (2, 'after move')`);
    expect((await images('renamed')).map((r) => r.new)).toEqual([
      { id: 1, v: 'after rename' },
      { id: 2, v: 'after move' },
    ]);
  });
});

describe('upgrading installs (issue 14 item 1)', () => {
  it('a channel installed by an older version is replaced: new function, EXECUTE revoked from PUBLIC', () => {
    const ch = triggerChannel(secret, { on: ['insert'] });
    const plan = planGenerate({
      channels: [{ channel: ch, file: 'schema.ts', exportName: 'secretEvents' }],
      state: {
        storage: { version: STORAGE_VERSION, schema: 'pgpubsub', migration: '0001_pgpubsub' },
        // The hash an older version recorded for the SQL it wrote.
        channels: new Map([
          [
            'secret',
            {
              name: 'secret',
              hash: '0123456789abcdef',
              tableSchema: 'public',
              table: 'secret',
              migration: '0001_pgpubsub',
            },
          ],
        ]),
      },
    });
    expect(plan).toMatchObject({ storage: null, added: [], changed: ['secret'], removed: [] });
    expect(plan.statements.join('\n')).toContain(
      'REVOKE ALL ON FUNCTION "pgpubsub"."ch_secret"() FROM PUBLIC',
    );
  });
});
