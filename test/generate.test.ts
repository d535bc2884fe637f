import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { pgTable, serial } from 'drizzle-orm/pg-core';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggerChannel } from '../src/channel.ts';
import { type GenerateOptions, type GenerateResult, generate } from '../src/cli/generate.ts';
import { isPgPubSubError, type PgPubSubErrorCode } from '../src/errors.ts';
import { collectChannels, planGenerate } from '../src/generate.ts';
import {
  planMigration,
  readMigrationFolder,
  STATEMENT_BREAKPOINT,
  writeMigration,
} from '../src/migrations.ts';
import { STORAGE_VERSION } from '../src/notifications.ts';
import { type TestDb, useTestDatabase } from './support/db.ts';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist/cli/main.js');
// `npx drizzle-kit` runs this same file; calling it directly saves npx's start-up time.
const KIT = join(ROOT, 'node_modules/drizzle-kit/bin.cjs');
const apps: string[] = [];

beforeAll(() => {
  if (!existsSync(CLI))
    throw new Error('dist/cli/main.js is missing: run `npm run build` first (npm test does).');
});
afterAll(() => {
  for (const dir of apps) rmSync(dir, { recursive: true, force: true });
});

/** A scratch app inside the repo, so `drizzle-orm` and `drizzle-pgpubsub` (self-reference → dist) resolve. */
function makeApp(files: Record<string, string>): string {
  const dir = join(ROOT, '.tmp', `gen-${randomBytes(5).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  apps.push(dir);
  writeFiles(dir, files);
  return dir;
}

function writeFiles(dir: string, files: Record<string, string>) {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
}

/** Every file under `dir`, by relative path. */
function readTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.set(relative(dir, path), readFileSync(path, 'utf8'));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Files that existed before are byte-identical; the journal only gained entries. */
function expectPreserved(before: Map<string, string>, after: Map<string, string>) {
  for (const [path, content] of before) {
    if (path.endsWith('_journal.json')) {
      const old = JSON.parse(content).entries;
      expect(JSON.parse(after.get(path)!).entries.slice(0, old.length)).toEqual(old);
    } else expect(after.get(path), path).toBe(content);
  }
}

async function run(cwd: string, options: GenerateOptions = {}) {
  const out: string[] = [];
  const warnings: string[] = [];
  const result: GenerateResult = await generate({
    cwd,
    log: (line) => out.push(line),
    warn: (line) => warnings.push(line),
    ...options,
  });
  return { ...result, out, warned: warnings };
}

function spawnNode(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, {
      cwd,
      env: { ...process.env, ...env, FORCE_COLOR: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const cli = (cwd: string, ...args: string[]) => spawnNode([CLI, ...args], cwd);
const kit = (cwd: string, env: Record<string, string>, ...args: string[]) =>
  spawnNode([KIT, ...args], cwd, env);

async function expectError(promise: Promise<unknown>, code: PgPubSubErrorCode, ...texts: string[]) {
  const error = await promise.then(
    () => expect.unreachable('generate should have failed'),
    (e: unknown) => e,
  );
  expect(isPgPubSubError(error, code), String(error)).toBe(true);
  for (const text of texts) expect((error as Error).message).toContain(text);
  return (error as Error).message;
}

const notifications = (t: TestDb) =>
  t.sql`SELECT channel, op, old, new FROM pgpubsub.notifications ORDER BY id`.then((rows) => [...rows]);
const clearNotifications = (t: TestDb) => t.sql`DELETE FROM pgpubsub.notifications`;
const triggersOn = (t: TestDb, table: string) =>
  t.sql`SELECT tgname FROM pg_trigger WHERE tgrelid = ${table}::regclass AND NOT tgisinternal ORDER BY tgname`.then(
    (rows) => rows.map((r) => r.tgname as string),
  );
const migrationCount = (t: TestDb) =>
  t.sql`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`.then((rows) => rows[0]!.n as number);

const CONFIG = `import { defineConfig } from 'drizzle-kit';
export default defineConfig({ dialect: 'postgresql', schema: './src/db/*.ts', out: './drizzle' });
`;

const PUBLIC_TS = (
  authorEvents: string,
  oddEvents: string,
) => `import { pgTable, serial, text } from 'drizzle-orm/pg-core';
import * as v from 'valibot';
import { channel, triggerChannel } from 'drizzle-pgpubsub';

export const authors = pgTable('authors', { id: serial().primaryKey(), name: text().notNull() });
export const odd = pgTable('Odd "Table" Name', {
  id: serial('ID').primaryKey(),
  mixed: text('Mixed Case "Col"').notNull(),
  status: text().notNull(),
});
export const authorEvents = triggerChannel(authors, ${authorEvents});
export const oddEvents = ${oddEvents};
export const emailRequested = channel('email_requested', v.object({ to: v.string() }));
`;

const APP_TS = (withChannel: boolean) => `import { pgSchema, serial, text } from 'drizzle-orm/pg-core';
import { triggerChannel } from 'drizzle-pgpubsub';

export const app = pgSchema('App Schema');
export const tasks = app.table('Tasks', { id: serial('TaskId').primaryKey(), title: text('Title').notNull() });
${withChannel ? "export const taskEvents = triggerChannel(tasks, { on: ['insert', 'delete'] });" : ''}
`;

const INIT_SQL = [
  'CREATE TABLE "authors" ("id" serial PRIMARY KEY, "name" text NOT NULL);',
  'CREATE TABLE "Odd ""Table"" Name" ("ID" serial PRIMARY KEY, "Mixed Case ""Col""" text NOT NULL, "status" text NOT NULL);',
  'CREATE SCHEMA "App Schema";',
  'CREATE TABLE "App Schema"."Tasks" ("TaskId" serial PRIMARY KEY, "Title" text NOT NULL);',
].join(STATEMENT_BREAKPOINT);

describe('generate: lifecycle in the 0.x journal layout', () => {
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
    expect(lines[1]).toBe('-- drizzle-pgpubsub:storage {"version":2,"schema":"pgpubsub"}');
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
    expect(functions.map((r) => r.proname)).toEqual(['ch_authors', 'ch_odd events', 'notify']);
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

const KIT_CONFIG = `import { defineConfig } from 'drizzle-kit';
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/schema.ts',
  out: './migrations',
  casing: 'snake_case',
  dbCredentials: { url: process.env.DATABASE_URL ?? '' },
});
`;

const KIT_SCHEMA = (
  extraColumns: string,
  triggers: boolean,
) => `import { integer, pgTable, serial, text, timestamp } from 'drizzle-orm/pg-core';
import * as v from 'valibot';
import { channel, triggerChannel } from 'drizzle-pgpubsub';

export const posts = pgTable('blog Posts', {
  id: serial().primaryKey(),
  authorId: integer().notNull(),
  bodyText: text().notNull(),${extraColumns}
});
export const published = channel('post_published', v.object({ id: v.number() }));
${triggers ? "export const postEvents = triggerChannel(posts, { on: ['insert', 'update'], columns: ['authorId'] });" : ''}
`;

describe('generate: next to drizzle-kit generate, migrate and push', () => {
  const t = useTestDatabase();

  it('keeps drizzle-kit working before and after its migrations (casing: snake_case)', async () => {
    const env = { DATABASE_URL: t.url };
    const dir = makeApp({ 'drizzle.config.ts': KIT_CONFIG, 'src/schema.ts': KIT_SCHEMA('', false) });
    // 1. Empty folder, custom channel only: the storage migration, journal and snapshot are created.
    const first = await run(dir);
    expect(first.plan).toMatchObject({ storage: 'create', added: [], channels: 1 });
    expect(readdirSync(join(dir, 'migrations/meta')).sort()).toEqual(['0000_snapshot.json', '_journal.json']);

    // 2. drizzle-kit accepts our snapshot as its diff base and creates the table.
    const tables = await kit(dir, env, 'generate', '--name', 'posts');
    expect(tables.code, tables.stdout + tables.stderr).toBe(0);
    expect(readFileSync(join(dir, 'migrations/0001_posts.sql'), 'utf8')).toContain(
      '"author_id" integer NOT NULL',
    );

    // 3. A trigger channel: its update filter uses the snake_case column name.
    writeFiles(dir, { 'src/schema.ts': KIT_SCHEMA('', true) });
    const second = await run(dir);
    expect(second.plan).toMatchObject({ storage: null, added: ['blog Posts'] });
    expect(second.warned).toEqual([]);
    expect(readFileSync(join(dir, 'migrations/0002_pgpubsub.sql'), 'utf8')).toContain(
      'AFTER UPDATE OF "author_id"',
    );

    // 4. An unrelated schema change: drizzle-kit generates only that, based on our snapshot copy.
    writeFiles(dir, { 'src/schema.ts': KIT_SCHEMA('\n  publishedAt: timestamp(),', true) });
    const before = readTree(dir);
    const change = await kit(dir, env, 'generate', '--name', 'published_at');
    expect(change.code, change.stdout + change.stderr).toBe(0);
    expectPreserved(before, readTree(dir));
    expect(readFileSync(join(dir, 'migrations/0003_published_at.sql'), 'utf8')).toBe(
      'ALTER TABLE "blog Posts" ADD COLUMN "published_at" timestamp;',
    );
    const journal = JSON.parse(readFileSync(join(dir, 'migrations/meta/_journal.json'), 'utf8'));
    expect(journal.entries.map((e: { tag: string }) => e.tag)).toEqual([
      '0000_pgpubsub',
      '0001_posts',
      '0002_pgpubsub',
      '0003_published_at',
    ]);
    const ids = [0, 1, 2, 3].map(
      (i) =>
        JSON.parse(readFileSync(join(dir, `migrations/meta/000${i}_snapshot.json`), 'utf8')) as {
          id: string;
          prevId: string;
        },
    );
    for (let i = 1; i < 4; i++) expect(ids[i]!.prevId).toBe(ids[i - 1]!.id);

    // 5. drizzle-kit migrate applies everything; the trigger sees snake_case columns.
    const migrated = await kit(dir, env, 'migrate');
    expect(migrated.code, migrated.stdout + migrated.stderr).toBe(0);
    expect(await migrationCount(t)).toBe(4);
    await t.sql`INSERT INTO "blog Posts" (author_id, body_text) VALUES (7, 'hello')`;
    await t.sql`UPDATE "blog Posts" SET body_text = 'edited'`;
    await t.sql`UPDATE "blog Posts" SET author_id = 8`;
    expect(await notifications(t)).toEqual([
      {
        channel: 'blog Posts',
        op: 'insert',
        old: null,
        new: { id: 1, author_id: 7, body_text: 'hello', published_at: null },
      },
      {
        channel: 'blog Posts',
        op: 'update',
        old: { id: 1, author_id: 7, body_text: 'edited', published_at: null },
        new: { id: 1, author_id: 8, body_text: 'edited', published_at: null },
      },
    ]);
    await clearNotifications(t);

    // 6. Still up to date after drizzle-kit's own migration.
    expect((await run(dir)).out).toEqual(['No changes: 2 channels up to date.']);

    // 7. drizzle-kit push (default schemaFilter: public) changes the table and leaves pgpubsub alone.
    writeFiles(dir, {
      'src/schema.ts': KIT_SCHEMA('\n  publishedAt: timestamp(),\n  views: integer(),', true),
    });
    const pushed = await kit(dir, env, 'push', '--force');
    expect(pushed.code, pushed.stdout + pushed.stderr).toBe(0);
    const columns =
      await t.sql`SELECT column_name FROM information_schema.columns WHERE table_name = 'blog Posts' ORDER BY ordinal_position`;
    expect(columns.map((c) => c.column_name)).toEqual([
      'id',
      'author_id',
      'body_text',
      'published_at',
      'views',
    ]);
    const storage = await t.sql`SELECT tablename FROM pg_tables WHERE schemaname = 'pgpubsub' ORDER BY 1`;
    expect(storage.map((r) => r.tablename)).toEqual(['notifications', 'wakeups']);
    expect(await triggersOn(t, '"blog Posts"')).toEqual([
      'pgpubsub_blog Posts_ins',
      'pgpubsub_blog Posts_upd',
      'pgpubsub_blog Posts_wake',
    ]);
    await t.sql`INSERT INTO "blog Posts" (author_id, body_text, views) VALUES (9, 'after push', 3)`;
    expect((await notifications(t)).map((n) => n.new.views)).toEqual([3]);
  });
});

describe('generate: drizzle-kit 1.0 folder layout', () => {
  const t = useTestDatabase();

  it('writes <timestamp>_pgpubsub/migration.sql after the newest folder, without a journal', async () => {
    const dir = makeApp({
      'drizzle.config.ts': CONFIG,
      'src/db/schema.ts': `import { pgTable, serial, text } from 'drizzle-orm/pg-core';
import { triggerChannel } from 'drizzle-pgpubsub';
export const items = pgTable('v1_items', { id: serial().primaryKey(), label: text().notNull() });
export const itemEvents = triggerChannel(items, { on: ['insert'], name: 'v1 items' });
`,
      'drizzle/20250101000000_init/migration.sql':
        'CREATE TABLE "v1_items" ("id" serial PRIMARY KEY, "label" text NOT NULL);',
      'drizzle/20250101000000_init/snapshot.json': '{"version":"9","dialect":"postgres","prevIds":[]}',
      // A folder dated in the future: ours must still sort after it.
      'drizzle/29990101235959_future/migration.sql': 'SELECT 1;',
    });
    const before = readTree(dir);
    const result = await run(dir, { schema: 'pgpubsub_v1' });
    expect(result.written).toEqual([join(dir, 'drizzle/29990102000000_pgpubsub/migration.sql')]);
    expect(result.out).toContain('Wrote drizzle/29990102000000_pgpubsub/migration.sql');
    expect(existsSync(join(dir, 'drizzle/meta'))).toBe(false);
    expectPreserved(before, readTree(dir));

    // drizzle-orm 0.45 has no v1 migrator: apply the folders in name order as it would.
    for (const name of readdirSync(join(dir, 'drizzle')).sort()) {
      const sql = readFileSync(join(dir, 'drizzle', name, 'migration.sql'), 'utf8');
      for (const chunk of sql.split('--> statement-breakpoint')) await t.sql.unsafe(chunk);
    }
    await t.sql`INSERT INTO v1_items (label) VALUES ('one')`;
    expect([...(await t.sql`SELECT channel, new FROM pgpubsub_v1.notifications`)]).toEqual([
      { channel: 'v1 items', new: { id: 1, label: 'one' } },
    ]);

    // The state is read back from the folders; the recorded schema is the default from now on.
    expect((await run(dir)).out).toEqual(['No changes: 1 channel up to date.']);
    await expectError(run(dir, { schema: 'other' }), 'INVALID_OPTIONS', 'lives in schema "pgpubsub_v1"');
  });
});

describe('generate: warnings', () => {
  it('warns on every run when schemaFilter would let drizzle-kit push drop the storage', async () => {
    const dir = makeApp({
      'drizzle.config.ts': `export default { dialect: 'postgresql', schema: './schema.ts', schemaFilter: ['public', 'pgpubsub'] };\n`,
      'schema.ts': `import * as v from 'valibot';\nimport { channel } from 'drizzle-pgpubsub';\nexport const ping = channel('ping', v.object({}));\n`,
    });
    const expected = expect.stringMatching(/^warning: schemaFilter in drizzle.config.ts includes "pgpubsub"/);
    expect((await run(dir)).warned).toEqual([expected]);
    const again = await run(dir);
    expect(again.out).toEqual(['No changes: 1 channel up to date.']);
    expect(again.warned).toEqual([expected]);
  });
});

describe('migration folder writer', () => {
  const folderWith = (files: Record<string, string>) => {
    const dir = makeApp(files);
    return join(dir, 'drizzle');
  };
  const journal = (...tags: string[]) =>
    JSON.stringify({
      version: '7',
      dialect: 'postgresql',
      entries: tags.map((tag, idx) => ({
        idx,
        version: '7',
        when: 1700000000000 + idx,
        tag,
        breakpoints: true,
      })),
    });
  const now = new Date('2026-03-04T05:06:07.890Z');

  it('names migrations with every drizzle-kit prefix scheme', () => {
    const out = folderWith({
      'drizzle/meta/_journal.json': journal('0000_a'),
      'drizzle/0000_a.sql': 'SELECT 1;',
    });
    const name = (prefix: 'index' | 'timestamp' | 'supabase' | 'unix' | 'none') =>
      relative(
        out,
        planMigration(readMigrationFolder(out), '', { name: 'pgpubsub', prefix, now }).migrationPath,
      );
    expect(name('index')).toBe('0001_pgpubsub.sql');
    expect(name('timestamp')).toBe('20260304050607_pgpubsub.sql');
    expect(name('supabase')).toBe('20260304050607_pgpubsub.sql');
    expect(name('unix')).toBe(`${Math.floor(now.getTime() / 1000)}_pgpubsub.sql`);
    expect(name('none')).toBe('_pgpubsub.sql');
  });

  it('never reuses a tag or snapshot name, and writes `when` after the last entry', () => {
    const out = folderWith({ 'drizzle/.keep': '' });
    for (const prefix of ['none', 'none', 'timestamp', 'timestamp'] as const) {
      writeMigration(
        planMigration(readMigrationFolder(out), 'SELECT 1;\n', { name: 'pgpubsub', prefix, now }),
      );
    }
    const written = JSON.parse(readFileSync(join(out, 'meta/_journal.json'), 'utf8'));
    expect(written.entries.map((e: { tag: string }) => e.tag)).toEqual([
      '_pgpubsub',
      '_pgpubsub_2',
      '20260304050607_pgpubsub',
      '20260304050608_pgpubsub',
    ]);
    expect(written.entries.map((e: { when: number }) => e.when - now.getTime())).toEqual([0, 1, 2, 3]);
    expect(readdirSync(join(out, 'meta')).sort()).toEqual([
      '20260304050607_snapshot.json',
      '20260304050608_snapshot.json',
      '_journal.json',
      '_snapshot.json',
    ]);
  });
});

describe('generate: bad input', () => {
  const schemaApp = (schema: string, extra: Record<string, string> = {}) =>
    makeApp({
      'drizzle.config.ts': CONFIG,
      'src/db/schema.ts': `import { pgTable, serial, text } from 'drizzle-orm/pg-core';
import * as v from 'valibot';
import { channel, triggerChannel } from 'drizzle-pgpubsub';
${schema}
`,
      ...extra,
    });
  const long = 'x'.repeat(70);
  const cases: {
    name: string;
    code: PgPubSubErrorCode;
    texts: string[];
    options?: { config?: string; schema?: string };
    app: () => string;
  }[] = [
    {
      name: 'no config',
      code: 'CONFIG_NOT_FOUND',
      texts: ['No drizzle config found in', 'drizzle.config.ts', '--config'],
      app: () => makeApp({ 'README.md': 'empty' }),
    },
    {
      name: 'missing --config file',
      code: 'CONFIG_NOT_FOUND',
      texts: ['nope.config.ts does not exist'],
      options: { config: 'nope.config.ts' },
      app: () => makeApp({ 'drizzle.config.ts': CONFIG }),
    },
    {
      name: 'not postgresql',
      code: 'CONFIG_INVALID',
      texts: ["needs `dialect: 'postgresql'`", '"mysql"'],
      app: () => makeApp({ 'drizzle.config.js': "export default { dialect: 'mysql', schema: './s.ts' };\n" }),
    },
    {
      name: 'config that throws',
      code: 'CONFIG_INVALID',
      texts: ['Could not load drizzle.config.ts', 'config exploded'],
      app: () => makeApp({ 'drizzle.config.ts': "throw new Error('config exploded');\n" }),
    },
    {
      name: 'no schema files',
      code: 'CONFIG_INVALID',
      texts: ['no schema files match "./src/db/*.ts"'],
      app: () => makeApp({ 'drizzle.config.ts': CONFIG }),
    },
    {
      name: 'schema import failure',
      code: 'SCHEMA_IMPORT_FAILED',
      texts: ["Could not import schema file src/db/schema.ts (Cannot find module './does-not-exist.ts')"],
      app: () => schemaApp("import './does-not-exist.ts';"),
    },
    {
      name: 'table without a primary key',
      code: 'NO_PRIMARY_KEY',
      texts: ['"keyless"', 'has no primary key', 'export `keylessEvents` of src/db/schema.ts'],
      app: () =>
        schemaApp(
          "export const keyless = pgTable('keyless', { name: text() });\nexport const keylessEvents = triggerChannel(keyless, { on: ['insert'] });",
        ),
    },
    {
      name: 'duplicate channel names',
      code: 'DUPLICATE_CHANNEL',
      texts: [
        'Two different channels are named "jobs"',
        'export `jobs` of src/db/other.ts',
        'export `jobEvents` of src/db/schema.ts',
      ],
      app: () =>
        schemaApp(
          "export const jobsTable = pgTable('jobs', { id: serial().primaryKey() });\nexport const jobEvents = triggerChannel(jobsTable, { on: ['insert'] });",
          {
            'src/db/other.ts':
              "import * as v from 'valibot';\nimport { channel } from 'drizzle-pgpubsub';\nexport const jobs = channel('jobs', v.object({}));\n",
          },
        ),
    },
    {
      name: 'invalid channel name',
      code: 'INVALID_CHANNEL_NAME',
      texts: ['src/db/schema.ts', `Channel name "${long}" is 70 bytes long`],
      app: () => schemaApp(`export const tooLong = channel('${long}', v.object({}));`),
    },
    {
      name: 're-exported notifications table',
      code: 'CONFIG_INVALID',
      texts: ['export `notifications` of src/db/schema.ts', 'Remove that export'],
      app: () => schemaApp("export { notifications } from 'drizzle-pgpubsub';"),
    },
    {
      name: 'bad --schema',
      code: 'INVALID_OPTIONS',
      texts: ['--schema must be a pg schema name'],
      options: { schema: 's'.repeat(64) },
      app: () => makeApp({ 'drizzle.config.ts': CONFIG }),
    },
    {
      name: 'corrupt journal',
      code: 'MIGRATIONS_INVALID',
      texts: ['_journal.json is not valid JSON'],
      app: () => schemaApp('', { 'drizzle/meta/_journal.json': '{ nope' }),
    },
  ];

  it('fails with one clear error, exit code 1 and nothing written', async () => {
    const apps = cases.map((c) => ({ ...c, dir: c.app() }));
    const before = apps.map(({ dir }) => readTree(dir));
    const spawned = await Promise.all(
      apps.map(({ dir, options = {} }) =>
        cli(dir, 'generate', ...Object.entries(options).flatMap(([key, value]) => [`--${key}`, value])),
      ),
    );
    for (const [i, c] of apps.entries()) {
      const { code, stdout, stderr } = spawned[i]!;
      expect({ case: c.name, code, stdout }).toEqual({ case: c.name, code: 1, stdout: '' });
      expect(stderr, c.name).toMatch(/^error: /);
      expect(stderr.trimEnd().split('\n'), c.name).toHaveLength(1);
      for (const text of c.texts) expect(stderr, c.name).toContain(text);
      await expectError(run(c.dir, c.options), c.code, ...c.texts);
      expect(readTree(c.dir), c.name).toEqual(before[i]);
    }
  });

  it('refuses a `when` that would be split at a statement breakpoint', async () => {
    const dir = schemaApp(
      "export const t1 = pgTable('t1', { id: serial().primaryKey() });\nexport const t1Events = triggerChannel(t1, { on: ['insert'], when: `'--> statement-breakpoint' <> ''` });",
    );
    await expectError(
      run(dir),
      'INVALID_CHANNEL',
      'export `t1Events` of src/db/schema.ts',
      'statement-breakpoint',
    );
    expect(existsSync(join(dir, 'drizzle'))).toBe(false);
  });

  it('prints usage for --help, no command and unknown commands or options', async () => {
    const dir = makeApp({});
    const [help, none, unknown, genHelp, badOption] = await Promise.all([
      cli(dir, '--help'),
      cli(dir),
      cli(dir, 'frobnicate'),
      cli(dir, 'generate', '--help'),
      cli(dir, 'generate', '--bogus'),
    ]);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('Usage: drizzle-pgpubsub <command>');
    expect(help.stdout).toMatch(/generate +write trigger migrations/);
    expect(none).toMatchObject({ code: 1, stdout: '' });
    expect(none.stderr).toContain('Usage: drizzle-pgpubsub <command>');
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toMatch(/^error: unknown command "frobnicate"\n\nUsage:/);
    expect(genHelp).toMatchObject({ code: 0, stderr: '' });
    expect(genHelp.stdout).toContain('Usage: drizzle-pgpubsub generate [--config <file>] [--schema <name>]');
    expect(badOption).toMatchObject({ code: 1, stdout: '' });
    expect(badOption.stderr).toMatch(/^error: Unknown option '--bogus'/);
  });

  it('prints the stack of an unexpected error and exits 1', async () => {
    // A hand-made object that passes isChannel() but has no Drizzle table: a bug, not bad input.
    const dir = makeApp({
      'drizzle.config.ts': CONFIG,
      'src/db/schema.ts': `export const fake = {
  [Symbol.for('drizzle-pgpubsub.channel')]: 'trigger', kind: 'trigger', name: 'fake', table: {}, ops: ['insert'], columns: [],
};
`,
    });
    const result = await cli(dir, 'generate');
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toMatch(/^TypeError: /);
    expect(result.stderr).toMatch(/\n {4}at /);
    expect(existsSync(join(dir, 'drizzle'))).toBe(false);
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
