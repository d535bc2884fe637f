import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, childrenOf, killLeftovers, removeCli, runCli, startCli } from './fixtures/cli-run.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

/**
 * An app that installed node-postgres only (issue 15): a project folder outside the repository whose
 * node_modules has drizzle-pgpubsub (the transpiled sources), drizzle-orm, pg and valibot, and no
 * postgres.js. `listen` runs its node-postgres listener module and every database command works;
 * a project with no driver at all is told what to install.
 */
const ROOT = resolve(import.meta.dirname, '..');
const t = useTestDatabase(['CREATE TABLE pg_only_effects (key text PRIMARY KEY, pid integer NOT NULL)']);
let project = '';
let bare = '';
let script = '';

const LISTENER = `import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import * as v from 'valibot';
import { channel, createListener } from 'drizzle-pgpubsub';

export const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
export const db = drizzle({ client: pool });
const jobs = channel('pg_only_jobs', v.object({ key: v.string() }));
export const listener = createListener(db, { concurrency: 2 }).on(jobs, async (event, tx) => {
  await tx.execute(sql\`INSERT INTO pg_only_effects (key, pid) VALUES (\${event.payload.key}, \${process.pid})\`);
});
`;

/** A project folder with drizzle-pgpubsub copied in and `deps` linked from the repository. */
function makeProject(deps: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgpubsub-pg-only-'));
  const modules = join(dir, 'node_modules');
  mkdirSync(modules);
  const pkg = join(modules, 'drizzle-pgpubsub');
  cpSync(resolve(script, '../../..'), pkg, { recursive: true });
  writeFileSync(
    join(pkg, 'package.json'),
    JSON.stringify({ name: 'drizzle-pgpubsub', type: 'module', exports: { '.': './src/index.js' } }),
  );
  for (const dep of deps) symlinkSync(join(ROOT, 'node_modules', dep), join(modules, dep), 'dir');
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  writeFileSync(join(dir, 'listener.ts'), LISTENER);
  return dir;
}

beforeAll(() => {
  script = buildCli();
  const runtime = ['drizzle-orm', 'valibot', 'jiti', 'croner', 'tinyglobby'];
  project = makeProject([...runtime, 'pg']);
  bare = makeProject(runtime);
});
afterAll(async () => {
  await killLeftovers();
  removeCli();
  for (const dir of [project, bare]) if (dir) rmSync(dir, { recursive: true, force: true });
});

const cli = (dir: string) => ({
  script: join(dir, 'node_modules/drizzle-pgpubsub/src/cli/main.js'),
  cwd: dir,
});

describe('an app with node-postgres only (no postgres.js installed)', () => {
  it('postgres.js cannot be resolved from the installed package', () => {
    const require = createRequire(join(project, 'node_modules/drizzle-pgpubsub/src/index.js'));
    expect(() => require.resolve('postgres')).toThrow(/Cannot find module 'postgres'/);
    expect(require.resolve('pg')).toContain('node_modules/pg/');
  });

  it('listen runs its node-postgres listener module: handles, stops on SIGTERM with exit 0', async () => {
    const run = startCli(['listen', 'listener.ts'], { DATABASE_URL: t.url }, cli(project));
    await run.line(/INFO .*listening on pg_only_jobs/);
    await t.sql`SELECT pgpubsub.notify('pg_only_jobs', jsonb_build_object('key', k::text)) FROM generate_series(1, 20) k`;
    await waitFor(
      async () =>
        Number((await t.sql`SELECT count(*)::int AS n FROM pg_only_effects`)[0]!.n) === 20 || undefined,
      { timeoutMs: 20_000, what: '20 effects' },
    ).catch((error) => {
      throw new Error(`${(error as Error).message}; CLI output:\n${run.all()}`);
    });
    // `listen` re-starts itself with the memory cap (docs/operations.md): in place where Node has
    // process.execve, else as one child process.
    const children = childrenOf(run.pid);
    const listenerPids = children.length > 0 ? children : [run.pid];
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.all()).toMatch(/stopped after .*: 20 processed/);
    const rows = await t.sql`SELECT DISTINCT pid FROM pg_only_effects`;
    expect(listenerPids).toHaveLength(1);
    expect(rows.map((r) => r.pid)).toEqual(listenerPids);
  });

  it('status, failed, retry and purge connect with pg', async () => {
    const env = { DATABASE_URL: t.url };
    await t.sql`INSERT INTO pgpubsub.notifications (channel, payload, status, attempts, failed_at, last_error)
      VALUES ('pg_only_jobs', '{"key":"dead"}', 'failed', 3, now() - interval '2 days', 'boom')`;
    const status = await runCli(['status', '--json'], env, 30_000, cli(project));
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).channels).toEqual(
      expect.arrayContaining([expect.objectContaining({ channel: 'pg_only_jobs', failed: 1 })]),
    );
    const failed = await runCli(['failed'], env, 30_000, cli(project));
    expect(failed.code).toBe(0);
    expect(failed.stdout).toMatch(/pg_only_jobs/);
    const retry = await runCli(['retry', '--all'], env, 30_000, cli(project));
    expect(retry.code).toBe(0);
    expect(await t.sql`SELECT status FROM pgpubsub.notifications WHERE payload->>'key' = 'dead'`).toEqual([
      { status: 'pending' },
    ]);
    await t.sql`UPDATE pgpubsub.notifications SET status = 'failed', failed_at = now() - interval '2 days'`;
    const purge = await runCli(['purge', '--older-than', '1d'], env, 30_000, cli(project));
    expect(purge.code).toBe(0);
    expect(await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`).toEqual([{ n: 0 }]);
  });

  it('with no driver installed, a database command says what to install (exit 78)', async () => {
    const status = await runCli(['status'], { DATABASE_URL: t.url }, 30_000, cli(bare));
    expect(status.code).toBe(78);
    expect(status.stderr).toMatch(
      /No PostgreSQL driver is installed.*`npm install postgres` or `npm install pg`/,
    );
  });
});
