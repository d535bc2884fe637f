import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CONFIG,
  clearNotifications,
  expectError,
  expectPreserved,
  fakeKit,
  KIT_MAJOR,
  kit,
  makeApp,
  migrationCount,
  notifications,
  readTree,
  run,
  triggersOn,
  useScratchApps,
  writeFiles,
} from './fixtures/generate-app.ts';
import { useTestDatabase } from './support/db.ts';

useScratchApps({ cli: true });

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
import { channel, triggerChannel } from 'drizzle-pgpubsub/schema';

export const posts = pgTable('blog Posts', {
  id: serial().primaryKey(),
  authorId: integer().notNull(),
  bodyText: text().notNull(),${extraColumns}
});
export const published = channel('post_published', v.object({ id: v.number() }));
${triggers ? "export const postEvents = triggerChannel(posts, { on: ['insert', 'update'], columns: ['authorId'] });" : ''}
`;

describe.runIf(KIT_MAJOR < 1)('generate: next to drizzle-kit 0.x generate, migrate and push', () => {
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
    expect(storage.map((r) => r.tablename)).toEqual([
      'backfills',
      'notifications',
      'packed',
      'schedules',
      'wakeups',
    ]);
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

describe('generate: the layout follows the installed drizzle-kit', () => {
  const schema = `import { pgTable, serial } from 'drizzle-orm/pg-core';
import { triggerChannel } from 'drizzle-pgpubsub/schema';
export const items = pgTable('kit_items', { id: serial().primaryKey() });
export const itemEvents = triggerChannel(items, { on: ['insert'] });
`;
  // The app's own node_modules/drizzle-kit is what Node would resolve from it: that one decides.
  const kit1 = fakeKit('1.0.0-rc.5');

  it('writes the 1.0 folder layout into an empty folder when drizzle-kit 1.0 is installed', async () => {
    const dir = makeApp({ 'drizzle.config.ts': CONFIG, 'src/db/schema.ts': schema, ...kit1 });
    const result = await run(dir, { now: new Date('2026-05-06T07:08:09Z') });
    expect(result.written).toEqual([join(dir, 'drizzle/20260506070809_pgpubsub/migration.sql')]);
    expect(existsSync(join(dir, 'drizzle/meta'))).toBe(false);
    expect((await run(dir)).out).toEqual(['No changes: 1 channel up to date.']);
  });

  it('refuses to add to a 0.x journal when drizzle-kit 1.0 is installed, naming `drizzle-kit up`', async () => {
    const dir = makeApp({ 'drizzle.config.ts': CONFIG, 'src/db/schema.ts': schema, ...fakeKit('0.31.11') });
    await run(dir);
    expect(existsSync(join(dir, 'drizzle/meta/_journal.json'))).toBe(true);
    writeFiles(dir, kit1);
    const before = readTree(dir);
    await expectError(run(dir), 'MIGRATIONS_INVALID', 'drizzle-kit 1.0.0-rc.5', 'npx drizzle-kit up');
    expectPreserved(before, readTree(dir));
  });
});

describe('generate: migration order on the drizzle-kit 1.0 layout (its base + diff snapshots)', () => {
  // Folders as drizzle-kit 1.0.0-rc.5 writes them (format 9 snapshots), with a stand-in drizzle-kit 1.0
  // installed; the real one writes them in test/schema-evolution.test.ts (CI's drizzle-orm 1.0 leg).
  const ORIGIN = '00000000-0000-0000-0000-000000000000';
  const col = (table: string, name: string) => ({
    schema: 'public',
    table,
    name,
    type: 'integer',
    entityType: 'columns',
  });
  const base = JSON.stringify({
    type: 'base',
    version: '9',
    dialect: 'postgres',
    id: 'b0',
    prevIds: [ORIGIN],
    footprints: [],
    ddl: [
      { schema: 'public', name: 'posts', isRlsEnabled: false, entityType: 'tables' },
      col('posts', 'id'),
      col('posts', 'author_id'),
    ],
  });
  const schema = (
    table: string,
    column: string,
  ) => `import { integer, pgTable, serial } from 'drizzle-orm/pg-core';
import { triggerChannel } from 'drizzle-pgpubsub/schema';
export const posts = pgTable('${table}', { id: serial().primaryKey(), ${column}: integer('${column}') });
export const postEvents = triggerChannel(posts, { on: ['update'], columns: ['${column}'], name: 'posts' });
`;
  const app = () => {
    const dir = makeApp({
      'drizzle.config.ts': CONFIG,
      'src/db/schema.ts': schema('posts', 'author_id'),
      'drizzle/20250101000000_init/migration.sql':
        'CREATE TABLE "posts" ("id" serial PRIMARY KEY, "author_id" integer);',
      'drizzle/20250101000000_init/snapshot.json': base,
      ...fakeKit('1.0.0-rc.5'),
    });
    return dir;
  };
  const rename = (deltas: object[]) =>
    JSON.stringify({
      type: 'diff',
      version: '9',
      dialect: 'postgres',
      id: 'd1',
      prevIds: ['b0'],
      footprints: [],
      deltas,
    });

  it('refuses a rename drizzle-kit 1.0 has not generated yet, then writes after its rename folder', async () => {
    const dir = app();
    expect((await run(dir)).written).toHaveLength(1);
    writeFiles(dir, { 'src/db/schema.ts': schema('articles', 'writer_id') });
    const before = readTree(dir);
    await expectError(
      run(dir),
      'MIGRATION_ORDER',
      'drizzle/20250101000000_init/snapshot.json',
      'still has "public"."posts"',
      'npx drizzle-kit generate',
    );
    expect(readTree(dir)).toEqual(before);
    // drizzle-kit 1.0 renamed the table but not yet the column: still refused, naming the column.
    writeFiles(dir, {
      'drizzle/29990101000000_rename/migration.sql': 'ALTER TABLE "posts" RENAME TO "articles";',
      'drizzle/29990101000000_rename/snapshot.json': rename([
        { op: 'rename', key: 'tables\0["public","posts"]', set: { name: 'articles' } },
      ]),
    });
    await expectError(
      run(dir),
      'MIGRATION_ORDER',
      'column "writer_id"',
      '29990101000000_rename/snapshot.json',
    );
    writeFiles(dir, {
      'drizzle/29990101000000_rename/snapshot.json': rename([
        { op: 'rename', key: 'tables\0["public","posts"]', set: { name: 'articles' } },
        { op: 'rename', key: 'columns\0["public","articles","author_id"]', set: { name: 'writer_id' } },
      ]),
    });
    const ours = await run(dir);
    expect(ours.plan).toMatchObject({ moved: ['posts'] });
    expect(ours.warned).toEqual([]);
    expect(ours.written).toEqual([join(dir, 'drizzle/29990101000001_pgpubsub/migration.sql')]);
  });

  it('names the folder to delete (1.0 has no `drizzle-kit drop`) when a later migration drops a watched column', async () => {
    const dir = app();
    await run(dir);
    writeFiles(dir, {
      'src/db/schema.ts': `import { pgTable, serial } from 'drizzle-orm/pg-core';
import { triggerChannel } from 'drizzle-pgpubsub/schema';
export const posts = pgTable('posts', { id: serial().primaryKey() });
export const postEvents = triggerChannel(posts, { on: ['update'], name: 'posts' });
`,
      'drizzle/29990101000000_drop/migration.sql': 'ALTER TABLE "posts" DROP COLUMN "author_id";',
      'drizzle/29990101000000_drop/snapshot.json': rename([
        { op: 'drop', key: 'columns\0["public","posts","author_id"]' },
      ]),
    });
    await expectError(
      run(dir),
      'MIGRATION_ORDER',
      'Migration 29990101000000_drop drops column "author_id"',
      'Delete the folder drizzle/29990101000000_drop',
    );
  });

  it('warns when drizzle-kit 1.0 has never seen the watched table', async () => {
    const dir = app();
    writeFiles(dir, {
      'src/db/schema.ts': `${schema('posts', 'author_id')}
export const extra = pgTable('extra', { id: serial().primaryKey() });
export const extraEvents = triggerChannel(extra, { on: ['insert'] });
`,
    });
    const result = await run(dir);
    expect(result.warned).toEqual([
      expect.stringMatching(
        /^warning: channel "extra" watches "public"."extra", which is not in drizzle-kit's latest snapshot \(drizzle\/20250101000000_init\/snapshot.json\).*delete this migration’s folder/,
      ),
    ]);
  });
});

describe.runIf(KIT_MAJOR >= 1)('generate: next to drizzle-kit 1.0 generate and migrate', () => {
  const t = useTestDatabase();

  it('writes the folder layout, which drizzle-kit 1.0 generates after and migrates', async () => {
    const env = { DATABASE_URL: t.url };
    const schema = (extra: string) => `import { integer, snakeCase, serial, text } from 'drizzle-orm/pg-core';
import { triggerChannel } from 'drizzle-pgpubsub/schema';
export const posts = snakeCase.table('kit1 posts', {
  id: serial().primaryKey(),
  authorId: integer().notNull(),
  bodyText: text().notNull(),${extra}
});
export const postEvents = triggerChannel(posts, { on: ['insert', 'update'], columns: ['authorId'] });
`;
    const dir = makeApp({
      'drizzle.config.ts': `import { defineConfig } from 'drizzle-kit';
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/schema.ts',
  out: './migrations',
  dbCredentials: { url: process.env.DATABASE_URL ?? '' },
});
`,
      'src/schema.ts': schema(''),
    });
    // 1. drizzle-kit creates the table, then ours adds storage and the trigger (snake_case names).
    const tables = await kit(dir, env, 'generate', '--name', 'posts');
    expect(tables.code, tables.stdout + tables.stderr).toBe(0);
    const ours = await run(dir);
    expect(ours.plan).toMatchObject({ storage: 'create', added: ['kit1 posts'] });
    expect(ours.written).toHaveLength(1);
    expect(ours.written[0]).toMatch(/migrations\/\d{14}_pgpubsub\/migration\.sql$/);
    expect(readFileSync(ours.written[0]!, 'utf8')).toContain('AFTER UPDATE OF "author_id"');
    expect(existsSync(join(dir, 'migrations/meta'))).toBe(false);

    // 2. drizzle-kit sees no change of its own, then generates only a real one.
    writeFiles(dir, { 'src/schema.ts': schema('\n  views: integer(),') });
    const before = readTree(dir);
    const change = await kit(dir, env, 'generate', '--name', 'views');
    expect(change.code, change.stdout + change.stderr).toBe(0);
    expectPreserved(before, readTree(dir));
    const folders = readdirSync(join(dir, 'migrations')).sort();
    expect(folders).toHaveLength(3);
    expect(readFileSync(join(dir, 'migrations', folders[2]!, 'migration.sql'), 'utf8')).toContain(
      'ADD COLUMN "views" integer',
    );

    // 3. drizzle-kit 1.0 migrate applies all three; the trigger sees snake_case columns.
    const migrated = await kit(dir, env, 'migrate');
    expect(migrated.code, migrated.stdout + migrated.stderr).toBe(0);
    await t.sql`INSERT INTO "kit1 posts" (author_id, body_text) VALUES (7, 'hello')`;
    expect(await notifications(t)).toEqual([
      {
        channel: 'kit1 posts',
        op: 'insert',
        old: null,
        new: { id: 1, author_id: 7, body_text: 'hello', views: null },
      },
    ]);
    await clearNotifications(t);
    expect((await run(dir)).out).toEqual(['No changes: 1 channel up to date.']);
  });
});

describe.runIf(KIT_MAJOR >= 1)('generate: upgrading a project from drizzle-kit 0.x to 1.0', () => {
  it('after `drizzle-kit up`, generate reads the converted folders and writes nothing new', async () => {
    const dir = makeApp({
      'drizzle.config.ts': CONFIG,
      'src/db/schema.ts': `import { pgTable, serial, text } from 'drizzle-orm/pg-core';
import { triggerChannel } from 'drizzle-pgpubsub/schema';
export const items = pgTable('up_items', { id: serial().primaryKey(), label: text().notNull() });
export const itemEvents = triggerChannel(items, { on: ['insert'] });
`,
      ...fakeKit('0.31.11'),
    });
    // The 0.x project: a journal with our migration.
    await run(dir);
    expect(existsSync(join(dir, 'drizzle/meta/_journal.json'))).toBe(true);
    // The upgrade: drizzle-kit 1.0 installed, `drizzle-kit up` converts the folder.
    rmSync(join(dir, 'node_modules'), { recursive: true });
    await expectError(run(dir), 'MIGRATIONS_INVALID', 'npx drizzle-kit up');
    const up = await kit(dir, {}, 'up');
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect(existsSync(join(dir, 'drizzle/meta/_journal.json'))).toBe(false);
    expect((await run(dir)).out).toEqual(['No changes: 1 channel up to date.']);
  });
});
