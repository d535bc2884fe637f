/**
 * `npm run demo`: 1,000 authors inserted in one statement become 1,000 posts, written by three
 * listener processes under `drizzle-pgpubsub listen --processes 3`, each exactly once.
 *
 * Uses DATABASE_URL's server when set (in a scratch database it creates and drops), otherwise starts
 * an embedded PostgreSQL. Exits 0 only if every check passes.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql as dsql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { type PgServer, startPg, withDatabase } from '../../tools/embedded-pg.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '../..');
const CLI = join(ROOT, 'dist/cli/main.js');
const AUTHORS = 1000;
const PROCESSES = 3;
const tty = process.stdout.isTTY === true;
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when it is missing or older than src/, so the demo runs the real published CLI. */
function ensureBuilt(): void {
  const built = existsSync(CLI) && existsSync(join(ROOT, 'dist/index.js'));
  if (built && statSync(join(ROOT, 'dist/index.js')).mtimeMs >= newestMtime(join(ROOT, 'src'))) return;
  console.log(built ? 'dist/ is older than src/: building…' : 'dist/ is missing: building…');
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (result.status !== 0) throw new Error('npm run build failed');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Prints the supervisor's output indented, above the progress line. */
function pipeOutput(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout!, child.stderr!]) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    });
  }
}

async function main(): Promise<number> {
  const started = Date.now();
  console.log(bold('drizzle-pgpubsub demo: authors → posts'));
  const external = process.env.DATABASE_URL;
  let server: PgServer | undefined;
  let admin: postgres.Sql | undefined;
  let supervisor: ChildProcess | undefined;
  const demoDb = `pgpubsub_demo_${randomBytes(3).toString('hex')}`;
  let progressShown = false;
  const clearProgress = () => {
    if (tty && progressShown) process.stdout.write('\r\x1b[K');
    progressShown = false;
  };
  const onSigint = () => {
    clearProgress();
    console.log('\ninterrupted: stopping');
    supervisor?.kill('SIGTERM');
  };
  process.on('SIGINT', onSigint);
  try {
    server = await startPg(external);
    admin = postgres(server.url, { max: 1, onnotice: () => {} });
    const [{ server_version }] = (await admin`SHOW server_version`) as unknown as [
      { server_version: string },
    ];
    console.log(
      `PostgreSQL ${server_version} (${server.embedded ? 'embedded, started for this demo' : 'from DATABASE_URL'}); scratch database ${demoDb}`,
    );
    await admin.unsafe(`CREATE DATABASE "${demoDb}"`);
    const url = withDatabase(server.url, demoDb);
    const client = postgres(url, { max: 4, onnotice: () => {} });
    const db = drizzle({ client: client });
    await migrate(db, { migrationsFolder: join(HERE, 'drizzle') });
    console.log(
      `migrated: ${relative(ROOT, join(HERE, 'drizzle'))} (tables, notifications storage, authors trigger)`,
    );

    ensureBuilt();
    const { authors } = await import('./schema.ts');
    const { status } = await import('drizzle-pgpubsub');

    const args = ['listen', relative(ROOT, join(HERE, 'listeners.ts')), '--processes', String(PROCESSES)];
    console.log(dim(`$ drizzle-pgpubsub ${args.join(' ')}`));
    supervisor = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const workerPids = new Set<number>();
    pipeOutput(supervisor, (line) => {
      const match = /worker \d+ started \(pid (\d+)\)/.exec(line);
      if (match) workerPids.add(Number(match[1]));
      clearProgress();
      console.log(dim(`  │ ${line}`));
    });
    const exited = new Promise<number | null>((resolve) => supervisor!.on('exit', (code) => resolve(code)));
    let supervisorGone = false;
    void exited.then(() => {
      supervisorGone = true;
    });

    const deadline = (ms: number, what: string) => {
      const end = Date.now() + ms;
      return () => {
        if (supervisorGone) throw new Error(`the listener exited early while waiting for ${what}`);
        if (Date.now() > end) throw new Error(`timed out after ${ms / 1000}s waiting for ${what}`);
      };
    };
    const tick = () => new Promise((resolve) => setTimeout(resolve, 100));
    const readyCheck = deadline(60_000, `${PROCESSES} listeners to connect`);
    while ((await status(db)).listeners.length < PROCESSES) {
      readyCheck();
      await tick();
    }

    const t0 = performance.now();
    await db.insert(authors).values(Array.from({ length: AUTHORS }, (_, i) => ({ name: `Author ${i + 1}` })));
    console.log(`inserted ${AUTHORS} authors in one statement (${(performance.now() - t0).toFixed(0)} ms)`);
    const count = async () =>
      Number(
        ((await db.execute(dsql`SELECT count(*)::int AS n FROM posts`)) as unknown as { n: number }[])[0]!.n,
      );
    const doneCheck = deadline(120_000, `${AUTHORS} posts`);
    let lastPrint = 0;
    for (let n = await count(); n < AUTHORS; n = await count()) {
      doneCheck();
      const line = `waiting for posts: ${n}/${AUTHORS} (${((performance.now() - t0) / 1000).toFixed(1)}s)`;
      if (tty) {
        process.stdout.write(`\r\x1b[K${line}`);
        progressShown = true;
      } else if (Date.now() - lastPrint > 1000) {
        console.log(line);
        lastPrint = Date.now();
      }
      await tick();
    }
    const elapsed = performance.now() - t0;
    clearProgress();

    const [{ posts, authorsWithPost, duplicates }] = (await db.execute(dsql`
      SELECT (SELECT count(*)::int FROM posts) AS posts,
             (SELECT count(DISTINCT author_id)::int FROM posts) AS "authorsWithPost",
             (SELECT count(*)::int FROM (SELECT author_id FROM posts GROUP BY author_id HAVING count(*) > 1) d) AS duplicates`)) as unknown as [
      { posts: number; authorsWithPost: number; duplicates: number },
    ];
    const perProcess = (await db.execute(
      dsql`SELECT handled_by AS "handledBy", count(*)::int AS n FROM posts GROUP BY 1 ORDER BY 1`,
    )) as unknown as { handledBy: string; n: number }[];
    const left = await status(db);

    console.log(`\n${bold('report')}`);
    console.log(`  posts created        ${posts} (expected ${AUTHORS})`);
    console.log(`  authors with a post  ${authorsWithPost}`);
    console.log(`  duplicates           ${duplicates}`);
    console.log(`  notifications left   ${left.totals.pending} pending, ${left.totals.failed} failed`);
    console.log(
      `  elapsed              ${(elapsed / 1000).toFixed(2)} s (${Math.round(AUTHORS / (elapsed / 1000))} posts/s)`,
    );
    console.log('  per process:');
    for (const row of perProcess) console.log(`    ${row.handledBy.padEnd(28)} ${String(row.n).padStart(5)}`);

    console.log(`\nSIGTERM → supervisor (pid ${supervisor.pid})`);
    supervisor.kill('SIGTERM');
    const code = await exited;
    const leftBehind = [...workerPids].filter(isAlive);
    console.log(
      `supervisor exited with code ${code}; ${workerPids.size} worker pids seen, ${leftBehind.length} still running`,
    );
    await client.end({ timeout: 5 });

    const failures = [
      posts !== AUTHORS && `expected ${AUTHORS} posts, got ${posts}`,
      authorsWithPost !== AUTHORS && `expected every author to have a post, got ${authorsWithPost}`,
      duplicates !== 0 && `${duplicates} authors have more than one post`,
      left.totals.pending + left.totals.failed !== 0 && 'notifications left over',
      code !== 0 && `supervisor exit code ${code}`,
      leftBehind.length > 0 && `worker processes left running: ${leftBehind.join(', ')}`,
    ].filter(Boolean);
    if (failures.length > 0) {
      console.error(`\nFAILED: ${failures.join('; ')}`);
      return 1;
    }
    console.log(
      `\n${bold('OK')}: ${AUTHORS} posts, exactly once, in ${((Date.now() - started) / 1000).toFixed(1)} s overall`,
    );
    return 0;
  } catch (error) {
    clearProgress();
    const code = (error as { code?: unknown } | null)?.code;
    if (
      typeof code === 'string' &&
      /^(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|CONNECT_TIMEOUT)$/.test(code)
    ) {
      console.error(
        `\nFAILED: cannot reach PostgreSQL at DATABASE_URL (${code}). Start it, fix DATABASE_URL, or unset DATABASE_URL to let the demo start an embedded PostgreSQL.`,
      );
    } else console.error(`\nFAILED: ${(error as Error)?.stack ?? error}`);
    if (supervisor && supervisor.exitCode === null) {
      supervisor.kill('SIGTERM');
      await new Promise((resolve) => supervisor!.once('exit', resolve));
    }
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    if (admin) {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${demoDb}" WITH (FORCE)`).catch(() => {});
      await admin.end({ timeout: 5 });
    }
    if (server?.embedded) {
      await server.stop();
      console.log('embedded PostgreSQL stopped');
    }
  }
}

process.exitCode = await main();
