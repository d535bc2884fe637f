import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pgTable, serial } from 'drizzle-orm/pg-core';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import { describe, expect, it } from 'vitest';
import { triggerChannel } from '../src/channel.ts';
import { collectChannels, planGenerate } from '../src/generate/plan.ts';
import { STORAGE_VERSION } from '../src/storage/notifications.ts';
import {
  APP_TS,
  CONFIG,
  clearNotifications,
  cli,
  expectPreserved,
  INIT_SQL,
  KIT_MAJOR,
  makeApp,
  migrationCount,
  notifications,
  PUBLIC_TS,
  readTree,
  run,
  triggersOn,
  useScratchApps,
  writeFiles,
} from './fixtures/generate-app.ts';
import { useTestDatabase } from './support/db.ts';

useScratchApps({ cli: true });

// drizzle-orm 1.0's migrate() refuses the 0.x journal: this lifecycle runs on drizzle-kit/orm 0.x only.
describe.runIf(KIT_MAJOR < 1)('generate: lifecycle in the 0.x journal layout', () => {
  const t = useTestDatabase();
  let dir: string;
  const apply = () => migrate(t.db, { migrationsFolder: join(dir, 'drizzle') });

  it('writes storage and triggers after a hand-written tables migration; migrate() makes them work', async () => {
    dir = makeApp({
      'drizzle.config.ts': CONFIG,
      'src/db/public.ts': PUBLIC_TS(
        "{ on: ['insert', 'update', 'delete'] }",
        "triggerChannel(odd, { name: 'odd events', on: ['insert', 'update'], columns: ['status'], when: `NEW.status <> 'hidden'` })",
      ),
      'src/db/app.ts': APP_TS(true),
      // Re-exports: the same channel objects seen twice count once.
      'src/db/index.ts': "export * from './public.ts';\nexport * from './app.ts';\n",
      // Hand-written: drizzle-kit 0.31 does not escape double quotes inside identifiers.
      'drizzle/0000_init.sql': INIT_SQL,
      'drizzle/meta/_journal.json': JSON.stringify(
        {
          version: '7',
          dialect: 'postgresql',
          entries: [{ idx: 0, version: '7', when: 1700000000000, tag: '0000_init', breakpoints: true }],
        },
        null,
        2,
      ),
    });
    const before = readTree(dir);

    const result = await run(dir);
    expect(result.plan).toMatchObject({
      storage: 'create',
      added: ['App Schema.Tasks', 'authors', 'odd events'],
      changed: [],
      removed: [],
      channels: 4,
    });
    expect(result.warned).toEqual([]);
    expect(result.out).toContain('Wrote drizzle/0001_pgpubsub.sql');
    expect(result.out).toContain('Wrote drizzle/meta/0001_snapshot.json');
    expect(result.out).toContain('Updated drizzle/meta/_journal.json');
    const after = readTree(dir);
    expectPreserved(before, after);
    expect([...after.keys()].filter((path) => !before.has(path)).sort()).toEqual([
      'drizzle/0001_pgpubsub.sql',
      'drizzle/meta/0001_snapshot.json',
    ]);

    // What drizzle-kit generate --custom writes: journal entry, snapshot copy with a new id.
    const journal = JSON.parse(after.get('drizzle/meta/_journal.json')!);
    const [first, entry] = journal.entries;
    expect(entry).toEqual({
      idx: 1,
      version: '7',
      when: entry.when,
      tag: '0001_pgpubsub',
      breakpoints: true,
    });
    expect(entry.when).toBeGreaterThan(first.when);
    expect(after.get('drizzle/meta/_journal.json')).toBe(JSON.stringify(journal, null, 2));
    // No snapshot yet: the empty one that drizzle-kit generate --custom writes.
    expect(JSON.parse(after.get('drizzle/meta/0001_snapshot.json')!)).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f-]{27}$/),
      prevId: '00000000-0000-0000-0000-000000000000',
      version: '7',
      dialect: 'postgresql',
      tables: {},
      enums: {},
      schemas: {},
      views: {},
      sequences: {},
      roles: {},
      policies: {},
      _meta: { columns: {}, schemas: {}, tables: {} },
    });

    // Markers only in the leading comment block; statements sorted by channel name.
    const sql = after.get('drizzle/0001_pgpubsub.sql')!;
    const lines = sql.split('\n');
    expect(lines[1]).toBe(`-- drizzle-pgpubsub:storage {"version":${STORAGE_VERSION},"schema":"pgpubsub"}`);
    expect(lines[2]).toMatch(
      /^-- drizzle-pgpubsub:channel \{"name":"App Schema.Tasks","hash":"[0-9a-f]{16}"/,
    );
    expect(lines[3]).toMatch(/^-- drizzle-pgpubsub:channel \{"name":"authors",/);
    expect(lines[4]).toMatch(
      /^-- drizzle-pgpubsub:channel \{"name":"odd events",.*"table":"Odd \\"Table\\" Name"\}$/,
    );
    expect(lines[5]).toBe('CREATE SCHEMA IF NOT EXISTS "pgpubsub";');
    for (const chunk of sql.split('--> statement-breakpoint').slice(1))
      expect(chunk).not.toContain('drizzle-pgpubsub:');

    await apply();
    expect(await migrationCount(t)).toBe(2);
    await t.sql`INSERT INTO authors (name) VALUES ('a'), ('b')`;
    await t.sql`UPDATE authors SET name = 'a2' WHERE id = 1`;
    await t.sql`DELETE FROM authors WHERE id = 2`;
    await t.sql`INSERT INTO "Odd ""Table"" Name" ("Mixed Case ""Col""", status) VALUES ('x', 'new'), ('y', 'hidden')`;
    await t.sql`UPDATE "Odd ""Table"" Name" SET "Mixed Case ""Col""" = 'x2'`;
    await t.sql`UPDATE "Odd ""Table"" Name" SET status = 'done' WHERE "ID" = 1`;
    await t.sql`INSERT INTO "App Schema"."Tasks" ("Title") VALUES ('t1')`;
    await t.sql`DELETE FROM "App Schema"."Tasks"`;
    expect(await notifications(t)).toEqual([
      { channel: 'authors', op: 'insert', old: null, new: { id: 1, name: 'a' } },
      { channel: 'authors', op: 'insert', old: null, new: { id: 2, name: 'b' } },
      { channel: 'authors', op: 'update', old: { id: 1, name: 'a' }, new: { id: 1, name: 'a2' } },
      { channel: 'authors', op: 'delete', old: { id: 2, name: 'b' }, new: null },
      {
        channel: 'odd events',
        op: 'insert',
        old: null,
        new: { ID: 1, 'Mixed Case "Col"': 'x', status: 'new' },
      },
      {
        channel: 'odd events',
        op: 'update',
        old: { ID: 1, 'Mixed Case "Col"': 'x2', status: 'new' },
        new: { ID: 1, 'Mixed Case "Col"': 'x2', status: 'done' },
      },
      { channel: 'App Schema.Tasks', op: 'insert', old: null, new: { TaskId: 1, Title: 't1' } },
      { channel: 'App Schema.Tasks', op: 'delete', old: { TaskId: 1, Title: 't1' }, new: null },
    ]);
    await clearNotifications(t);
  });

  it('writes nothing when run again unchanged, in-process and through the CLI', async () => {
    const before = readTree(dir);
    const result = await run(dir);
    expect(result.written).toEqual([]);
    expect(result.out).toEqual(['No changes: 4 channels up to date.']);
    const spawned = await cli(dir, 'generate');
    expect(spawned).toMatchObject({ code: 0, stdout: 'No changes: 4 channels up to date.\n', stderr: '' });
    expect(readTree(dir)).toEqual(before);
  });

  it('replaces a changed channel in a new migration; migrate applies only that file', async () => {
    writeFiles(dir, {
      'src/db/public.ts': PUBLIC_TS(
        "{ on: ['update'], columns: ['name'] }",
        "triggerChannel(odd, { name: 'odd events', on: ['insert', 'update'], columns: ['status'], when: `NEW.status <> 'hidden'` })",
      ),
    });
    const before = readTree(dir);
    const result = await run(dir);
    expect(result.plan).toMatchObject({
      storage: null,
      added: [],
      changed: ['authors'],
      moved: [],
      removed: [],
    });
    expectPreserved(before, readTree(dir));
    const sql = readFileSync(join(dir, 'drizzle/0002_pgpubsub.sql'), 'utf8');
    expect(sql).not.toContain('CREATE SCHEMA');
    expect(sql).toContain('CREATE OR REPLACE FUNCTION "pgpubsub"."ch_authors"()');

    await apply();
    expect(await migrationCount(t)).toBe(3);
    expect(await triggersOn(t, 'authors')).toEqual(['pgpubsub_authors_upd', 'pgpubsub_authors_wake']);
    await t.sql`INSERT INTO authors (name) VALUES ('c')`;
    await t.sql`UPDATE authors SET id = id WHERE name = 'c'`;
    await t.sql`UPDATE authors SET name = 'c2' WHERE name = 'c'`;
    await t.sql`DELETE FROM authors WHERE name = 'c2'`;
    expect(await notifications(t)).toEqual([
      { channel: 'authors', op: 'update', old: { id: 3, name: 'c' }, new: { id: 3, name: 'c2' } },
    ]);
    await clearNotifications(t);
  });

  it('drops a removed channel and moves a channel to another table', async () => {
    writeFiles(dir, {
      'src/db/public.ts': PUBLIC_TS(
        "{ on: ['update'], columns: ['name'] }",
        "triggerChannel(authors, { name: 'odd events', on: ['delete'] })",
      ),
      'src/db/app.ts': APP_TS(false),
    });
    const before = readTree(dir);
    const result = await run(dir);
    expect(result.plan).toMatchObject({
      added: [],
      changed: [],
      moved: ['odd events'],
      removed: ['App Schema.Tasks'],
    });
    expect(result.plan.channels).toBe(3);
    expectPreserved(before, readTree(dir));
    const sql = readFileSync(join(dir, 'drizzle/0003_pgpubsub.sql'), 'utf8');
    expect(sql.split('\n').slice(1, 3)).toEqual([
      '-- drizzle-pgpubsub:drop {"name":"App Schema.Tasks"}',
      expect.stringMatching(/^-- drizzle-pgpubsub:channel \{"name":"odd events",.*"table":"authors"\}$/),
    ]);

    await apply();
    expect(await migrationCount(t)).toBe(4);
    expect(await triggersOn(t, '"App Schema"."Tasks"')).toEqual([]);
    expect(await triggersOn(t, '"Odd ""Table"" Name"')).toEqual([]);
    expect(await triggersOn(t, 'authors')).toEqual([
      'pgpubsub_authors_upd',
      'pgpubsub_authors_wake',
      'pgpubsub_odd events_del',
    ]);
    const functions =
      await t.sql`SELECT proname FROM pg_proc WHERE pronamespace = 'pgpubsub'::regnamespace ORDER BY 1`;
    expect(functions.map((r) => r.proname)).toEqual([
      'ch_authors',
      'ch_odd events',
      'expand_packed',
      'notify',
      'notify',
      'notify_many',
    ]);
    await t.sql`INSERT INTO "App Schema"."Tasks" ("Title") VALUES ('t2')`;
    await t.sql`INSERT INTO "Odd ""Table"" Name" ("Mixed Case ""Col""", status) VALUES ('z', 'new')`;
    await t.sql`INSERT INTO authors (name) VALUES ('d')`;
    await t.sql`DELETE FROM authors WHERE name = 'd'`;
    expect(await notifications(t)).toEqual([
      { channel: 'odd events', op: 'delete', old: { id: 4, name: 'd' }, new: null },
    ]);
    await clearNotifications(t);

    const again = await run(dir);
    expect(again.out).toEqual(['No changes: 3 channels up to date.']);
  });
});

describe('generate: storage upgrades', () => {
  const t = useTestDatabase();

  it('upgrades storage written by an older version in place and replaces its channels', async () => {
    const authors = pgTable('authors', { id: serial().primaryKey() });
    const found = collectChannels([
      { file: 'schema.ts', exports: { authorEvents: triggerChannel(authors, { on: ['insert'] }) } },
    ]);
    const plan = planGenerate({
      channels: found,
      state: {
        storage: { version: STORAGE_VERSION - 1, schema: 'pgpubsub', migration: '0001_pgpubsub' },
        channels: new Map([
          [
            'authors',
            {
              name: 'authors',
              hash: 'v1',
              tableSchema: 'public',
              table: 'authors',
              migration: '0001_pgpubsub',
            },
          ],
        ]),
      },
    });
    expect(plan.storage).toBe('upgrade');
    expect(plan.changed).toEqual(['authors']);
    expect(plan.header[1]).toBe(
      `-- drizzle-pgpubsub:storage {"version":${STORAGE_VERSION},"schema":"pgpubsub"}`,
    );
    // The storage statements are idempotent: they run on a database that already has the storage
    // (the test template), and leave notify() in its new form.
    await t.sql.unsafe('CREATE TABLE authors (id serial PRIMARY KEY)');
    for (const statement of plan.statements) await t.sql.unsafe(statement);
    const [fn] = await t.sql`SELECT prosrc FROM pg_proc WHERE proname = 'notify'
      AND pronamespace = 'pgpubsub'::regnamespace`;
    expect(fn!.prosrc).toContain("current_setting('transaction_isolation')");
    await t.sql`INSERT INTO authors DEFAULT VALUES`;
    expect(await t.sql`SELECT channel, op FROM pgpubsub.notifications`).toEqual([
      { channel: 'authors', op: 'insert' },
    ]);
  });
});
