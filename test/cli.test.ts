import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../tools/embedded-pg.ts';
import {
  alive,
  buildCli,
  childrenOf,
  killLeftovers,
  removeCli,
  runCli,
  startCli,
} from './fixtures/cli-run.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const LISTENER = 'test/fixtures/cli-listener.ts';
/**
 * Tests that run the CLI several times in a row. Each run starts Node and loads drizzle-orm, which
 * takes ~1.3 s on Node 24 (its package.json reader re-reads drizzle-orm's very large package.json
 * for every module) against ~0.25 s on Node 20.
 */
const SEQUENTIAL_CLI_RUNS_MS = 120_000;

const t = useTestDatabase([
  'CREATE TABLE cli_effects (id serial PRIMARY KEY, key text NOT NULL UNIQUE, pid integer NOT NULL, worker text)',
]);
const env = () => ({ DATABASE_URL: t.url });

beforeAll(buildCli);
afterAll(removeCli);

/** After each test of a sequential block: no process left, tables empty. */
async function cleanup() {
  await killLeftovers();
  await t.sql`TRUNCATE cli_effects, pgpubsub.notifications RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
}

type Job = { key: string; sleepMs?: number; fail?: boolean };
async function notifyJobs(channel: string, jobs: Job[]): Promise<void> {
  await t.sql`SELECT pgpubsub.notify(${channel}, j) FROM jsonb_array_elements(${JSON.stringify(jobs)}::jsonb) j`;
}
const effects = async () =>
  (await t.sql`SELECT key, pid, worker FROM cli_effects ORDER BY key`) as unknown as {
    key: string;
    pid: number;
    worker: string | null;
  }[];
const effectCount = async () => Number((await t.sql`SELECT count(*)::int AS n FROM cli_effects`)[0]!.n);
const jobs = (prefix: string, n: number, extra: Omit<Job, 'key'> = {}): Job[] =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, ...extra }));

describe('listen', () => {
  afterEach(cleanup);

  it('on SIGTERM lets in-flight handlers finish, aborts those past --shutdown-timeout and exits 0', async () => {
    const run = startCli(['listen', LISTENER, '--shutdown-timeout', '1500ms'], env());
    await run.line(/INFO .*listening on cli_jobs, cli_other/);
    await notifyJobs('cli_jobs', [{ key: 'short', sleepMs: 700 }]);
    await notifyJobs('cli_other', [{ key: 'long', sleepMs: 60_000 }]);
    await run.line(/handler-start short/);
    await run.line(/handler-start long/);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.all()).toMatch(/stopping \(SIGTERM\): no new claims; waiting up to 1.5s/);
    expect(run.all()).toMatch(
      /stopped after .*: 1 processed.*1 in-flight claim\(s\) aborted and left pending/,
    );
    expect((await effects()).map((e) => e.key)).toEqual(['short']);
    const [left] = await t.sql`SELECT channel, attempts, status FROM pgpubsub.notifications`;
    expect(left).toEqual({ channel: 'cli_other', attempts: 0, status: 'pending' });
  });

  it("keeps a logger the module gave its listener: the listener's lines go there, the CLI's to stdout", async () => {
    const run = startCli(['listen', LISTENER], { ...env(), CLI_OWN_LOGGER: '1' });
    await run.line(/^own-logger info listening on cli_jobs, cli_other$/);
    await run.line(/INFO .*listening on cli_jobs, cli_other \(the listener logs to the module's logger\)/, {
      stream: 'stdout',
    });
    await notifyJobs('cli_other', [{ key: 'bad', fail: true }]);
    await run.line(/^own-logger warn handler failed on cli_other #\d+ \(attempt 1\): boom bad; retrying in/);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.stdout.join('\n')).not.toMatch(/handler failed/);
  });

  it('a second signal exits at once, leaving the in-flight notification pending', async () => {
    const run = startCli(['listen', LISTENER], env());
    await run.line(/listening on/);
    await notifyJobs('cli_jobs', [{ key: 'stuck', sleepMs: 60_000 }]);
    await run.line(/handler-start stuck/);
    run.child.kill('SIGINT');
    await run.line(/stopping \(SIGINT\)/);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 1, signal: null });
    expect(run.all()).toMatch(/SIGTERM again: exiting now; unfinished handlers roll back/);
    await waitFor(async () => (await countNotifications(t.sql)).pending === 1);
    expect(await effectCount()).toBe(0);
  });

  it('applies --channels/--concurrency/--batch-size and logs failures and dead letters', async () => {
    const run = startCli(
      [
        'listen',
        LISTENER,
        '--channels',
        'cli_other',
        '--concurrency',
        '1',
        '--batch-size',
        '1',
        '--log-level',
        'debug',
      ],
      env(),
    );
    await run.line(/listening on cli_other concurrency=1 batchSize=1/);
    await notifyJobs('cli_jobs', [{ key: 'ignored' }]);
    await notifyJobs('cli_other', [{ key: 'bad', fail: true }, { key: 'good' }]);
    await run.line(/WARN .*handler failed on cli_other #\d+ \(attempt 1\): boom bad; retrying in/);
    await run.line(/ERROR .*cli_other #\d+ failed for good after 2 attempts: boom bad \(kept as failed/);
    await run.line(/DEBUG .*processed cli_other #\d+ attempt=1/);
    expect((await effects()).map((e) => e.key)).toEqual(['good']);
    expect(await countNotifications(t.sql, 'cli_jobs')).toEqual({ pending: 1, failed: 0 });
    expect(await countNotifications(t.sql, 'cli_other')).toEqual({ pending: 0, failed: 1 });
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });
});

describe('listen --processes (supervisor)', () => {
  afterEach(cleanup);

  it('runs 3 workers with the same log settings, restarts a SIGKILLed one without losing work, stops all on SIGTERM', async () => {
    const run = startCli(
      ['listen', LISTENER, '--processes', '3', '--json', '--log-level', 'debug', '--restart-delay', '200ms'],
      env(),
    );
    const ready = (worker: number, pid?: number) =>
      run.line(
        new RegExp(`"pid":${pid ?? '\\d+'},"hostname":"[^"]+","worker":${worker},.*"msg":"listening on`),
        {
          stream: 'stdout',
        },
      );
    await Promise.all([ready(1), ready(2), ready(3)]);
    const workers = childrenOf(run.pid);
    expect(workers).toHaveLength(3);

    await notifyJobs('cli_jobs', jobs('k', 150, { sleepMs: 10 }));
    await waitFor(async () => (await effectCount()) >= 15, { what: 'work under way' });
    const line1 = await ready(1);
    const victim = JSON.parse(line1).pid as number;
    process.kill(victim, 'SIGKILL');
    await run.line(
      new RegExp(
        `worker 1 \\(pid ${victim}\\) was killed by SIGKILL; restarting in 200ms \\(restart 1 of 5\\)`,
      ),
    );
    const restarted = await waitFor(() =>
      run.stdout
        .map((l) => JSON.parse(l))
        .find((l) => l.worker === 1 && l.pid !== victim && /^listening on/.test(l.msg)),
    );
    await waitFor(async () => (await effectCount()) === 150, { timeoutMs: 30_000, what: '150 effects' });
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
    expect(new Set((await effects()).map((e) => e.key)).size).toBe(150);

    // Log format and level reached every worker (django-pgpubsub's B11): all JSON, debug lines from workers.
    const lines = run.stdout.filter(Boolean).map((l) => JSON.parse(l));
    expect(lines.some((l) => l.level === 20 && l.worker !== undefined && /^processed/.test(l.msg))).toBe(
      true,
    );
    // pino's shape, so `| pino-pretty` reads it: level number, time in epoch ms, pid, hostname, msg.
    for (const l of lines) {
      expect(l).toMatchObject({
        level: expect.any(Number),
        time: expect.any(Number),
        pid: expect.any(Number),
        hostname: expect.any(String),
        msg: expect.any(String),
      });
      expect([20, 30, 40, 50]).toContain(l.level);
      expect(Object.keys(l).slice(0, 4)).toEqual(['level', 'time', 'pid', 'hostname']);
      expect(Object.keys(l).at(-1)).toBe('msg');
    }
    expect(lines.find((l) => l.role === 'supervisor')!.pid).toBe(run.pid);

    const all = [...childrenOf(run.pid)];
    expect(all).toContain(restarted.pid);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    for (const pid of [...workers, ...all]) expect(alive(pid)).toBe(false);
    const after = run.stdout.map((l) => JSON.parse(l));
    expect(
      after
        .filter((l) => /^stopped after/.test(l.msg))
        .map((l) => l.worker)
        .sort(),
    ).toEqual([1, 2, 3]);
    expect(after.at(-1)).toMatchObject({ role: 'supervisor', msg: 'all workers stopped' });
  });

  it('workers stop by themselves when the supervisor is SIGKILLed', async () => {
    const run = startCli(['listen', LISTENER, '--processes', '2'], env());
    await run.line(/\[worker 1 pid \d+\] listening on/);
    await run.line(/\[worker 2 pid \d+\] listening on/);
    const workers = childrenOf(run.pid);
    expect(workers).toHaveLength(2);
    await notifyJobs('cli_jobs', [{ key: 'inflight', sleepMs: 500 }]);
    await run.line(/handler-start inflight/);
    run.child.kill('SIGKILL');
    await waitFor(() => workers.every((pid) => !alive(pid)), {
      timeoutMs: 15_000,
      what: 'orphaned workers to exit',
    });
    await run.line(/the supervisor is gone \(IPC channel closed\): stopping/);
    // The in-flight handler was drained, not cut off.
    expect((await effects()).map((e) => e.key)).toEqual(['inflight']);
  });

  it('gives up after --max-restarts consecutive crashes of a worker, exit 1, no child left', async () => {
    const run = startCli(
      [
        'listen',
        'test/fixtures/cli-crash.ts',
        '--processes',
        '1',
        '--max-restarts',
        '2',
        '--restart-delay',
        '50ms',
      ],
      env(),
    );
    const { code } = await run.exited;
    expect(code).toBe(1);
    const out = run.all();
    expect(out.match(/worker 1 started/g)).toHaveLength(3);
    expect(out).toMatch(/exited with code 3; restarting in 50ms \(restart 1 of 2\)/);
    expect(out).toMatch(/exited with code 3; restarting in 100ms \(restart 2 of 2\)/);
    expect(out).toMatch(/exited with code 3: 3 crashes in a row, restart limit \(2\) reached; giving up/);
    expect(childrenOf(run.pid)).toEqual([]);
  });

  it('does not restart workers that fail on configuration (exit 78)', async () => {
    const { code, stdout, stderr } = await runCli(
      ['listen', 'test/fixtures/cli-no-listener.ts', '--processes', '2'],
      env(),
    );
    expect(code).toBe(78);
    expect(stderr).toMatch(/error: test\/fixtures\/cli-no-listener.ts does not export a listener/);
    expect(stdout).toMatch(/exited with a configuration error .*; not restarting/);
    expect(stdout).not.toMatch(/restarting in/);
  });
});

// Concurrent: these runs touch no shared rows.
describe('errors', () => {
  afterAll(killLeftovers);

  it.concurrent(
    'module not found: exit 78 with the path',
    async () => {
      for (const extra of [[], ['--processes', '2']]) {
        const { code, stderr } = await runCli(['listen', 'src/nope.ts', ...extra], env());
        expect(code).toBe(78);
        expect(stderr).toBe(
          `error: listener module "src/nope.ts" not found (looked for ${resolve('src/nope.ts')}). Pass the path of the file that exports your listener, e.g. drizzle-pgpubsub listen ./src/listeners.ts`,
        );
      }
    },
    SEQUENTIAL_CLI_RUNS_MS,
  );

  it.concurrent('module without a listener export: exit 78 naming its exports', async () => {
    const { code, stderr } = await runCli(['listen', 'test/fixtures/cli-no-listener.ts'], env());
    expect(code).toBe(78);
    expect(stderr).toBe(
      'error: test/fixtures/cli-no-listener.ts does not export a listener. It exports answer, helper. Add `export const listener = createListener(db).on(channel, handler)` (or export it as default).',
    );
  });

  it.concurrent(
    'no DATABASE_URL: exit 78 for every database command',
    async () => {
      for (const args of [
        ['listen', LISTENER],
        ['listen', LISTENER, '--processes', '2'],
        ['status'],
        ['failed'],
        ['retry', '--all'],
        ['purge', '--older-than', '7d'],
      ]) {
        const { code, stderr } = await runCli(args, {});
        expect({ args, code }).toEqual({ args, code: 78 });
        expect(stderr).toBe(
          'error: DATABASE_URL is not set. Set it to your PostgreSQL connection URL (export DATABASE_URL=postgres://user:password@host:5432/dbname) or pass --database-url <url>.',
        );
      }
    },
    SEQUENTIAL_CLI_RUNS_MS,
  );

  it.concurrent('unknown channel in --channels: exit 78', async () => {
    const { code, stderr } = await runCli(['listen', LISTENER, '--channels', 'cli_jobs,nope'], env());
    expect(code).toBe(78);
    expect(stderr).toBe(
      'error: Channel "nope" has no handler in this listener. Known channels: cli_jobs, cli_other.',
    );
  });

  it.concurrent(
    'bad options: exit 2 with the usage',
    async () => {
      const cases: [string[], RegExp][] = [
        [['listen', LISTENER, '--concurrency', '0'], /--concurrency must be an integer ≥ 1, got "0"/],
        [['listen', LISTENER, '--bogus'], /Unknown option '--bogus'/],
        [['listen'], /listen needs the path of the module/],
        [['retry'], /retry needs exactly one of --id <id>, --channel <name> or --all/],
        [['retry', '--id', 'x1'], /--id must be a notification id/],
        [['purge'], /purge needs --older-than <age>/],
        [['purge', '--older-than', 'soon'], /--older-than must be a duration/],
        [['status', '--max-age', '5m'], /--max-age and --max-failed go with --check/],
      ];
      for (const [args, message] of cases) {
        const { code, stderr } = await runCli(args, env());
        expect({ args, code }).toEqual({ args, code: 2 });
        expect(stderr).toMatch(message);
        expect(stderr).toMatch(/Usage: drizzle-pgpubsub/);
      }
    },
    SEQUENTIAL_CLI_RUNS_MS,
  );

  it.concurrent('unreachable database: listen retries and says so; status gives up after --connect-timeout', async () => {
    const port = await freePort();
    const down = { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x` };
    const run = startCli(['listen', LISTENER], down);
    await run.line(
      new RegExp(
        `WARN .*database unreachable at 127.0.0.1:${port} \\(connect ECONNREFUSED .*\\), retrying in 1s \\(attempt 2\\)`,
      ),
    );
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);

    const listenGivesUp = await runCli(['listen', LISTENER, '--connect-timeout', '1s'], down);
    expect(listenGivesUp.code).toBe(1);
    expect(listenGivesUp.stderr).toMatch(
      new RegExp(
        `^error: database unreachable at 127.0.0.1:${port} \\(connect ECONNREFUSED .*\\); gave up after 2 attempts in`,
      ),
    );
    const status = await runCli(['status', '--connect-timeout', '1200ms'], down);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(/^warning: database unreachable at .*retrying in 500ms \(attempt 1\)/);
    expect(status.stderr).toMatch(
      /error: database unreachable at .*gave up after .* Check DATABASE_URL and that PostgreSQL is running\.$/,
    );
  });

  it.concurrent('notifications table missing: exit 78 telling to run generate and migrate', async () => {
    const message =
      'error: The notifications table "nowhere"."notifications" does not exist. Run `npx drizzle-pgpubsub generate` and then `npx drizzle-kit migrate`.';
    const status = await runCli(['status', '--schema', 'nowhere'], env());
    expect(status.code).toBe(78);
    expect(status.stderr).toBe(message);
    const failed = await runCli(['failed', '--schema', 'nowhere'], env());
    expect(failed.code).toBe(78);
    expect(failed.stderr).toBe(message);

    const empty = `${t.name}_empty`;
    await t.sql.unsafe(`CREATE DATABASE "${empty}"`);
    try {
      const url = new URL(t.url);
      url.pathname = `/${empty}`;
      const { code, stderr } = await runCli(['listen', LISTENER], { DATABASE_URL: url.toString() });
      expect(code).toBe(78);
      expect(stderr).toBe(message.replace('"nowhere"', '"pgpubsub"'));
    } finally {
      await t.sql.unsafe(`DROP DATABASE "${empty}" WITH (FORCE)`);
    }
  });
});

describe('status, failed, retry, purge', () => {
  afterEach(cleanup);

  async function seed() {
    await t.sql`
      INSERT INTO pgpubsub.notifications (channel, payload, status, attempts, run_at, created_at, last_error, failed_at)
      VALUES
        ('cli_jobs', '{"key":"p1"}', 'pending', 0, now() - interval '10 minutes', now() - interval '10 minutes', NULL, NULL),
        ('cli_jobs', '{"key":"p2"}', 'pending', 0, now() - interval '1 minute', now() - interval '1 minute', NULL, NULL),
        ('cli_jobs', '{"key":"s1"}', 'pending', 3, now() + interval '1 hour', now() - interval '2 hours', 'Error: later', NULL),
        ('cli_jobs', '{"key":"f1"}', 'failed', 10, now(), now() - interval '9 days', 'Error: smtp down' || chr(10) || '    at send', now() - interval '8 days'),
        ('cli_other', '{"key":"f2"}', 'failed', 10, now(), now() - interval '1 day', 'Error: bad payload', now() - interval '1 hour'),
        ('cli_other', '{"key":"f3"}', 'failed', 1, now(), now() - interval '1 day', 'DECODE_FAILED', now() - interval '2 days')`;
  }

  it('status prints per-channel counts, listeners, JSON, and --check exit codes', async () => {
    await seed();
    const text = await runCli(['status'], env());
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^channel\s+pending\s+scheduled\s+failed\s+oldest pending$/m);
    expect(text.stdout).toMatch(/^cli_jobs\s+2\s+1\s+1\s+10m( \d+s)?$/m);
    expect(text.stdout).toMatch(/^cli_other\s+0\s+0\s+2\s+-$/m);
    expect(text.stdout).toMatch(/^\(total\)\s+2\s+1\s+3$/m);
    expect(text.stdout).toMatch(/^listeners connected: 0$/m);

    const json = JSON.parse((await runCli(['status', '--json'], env())).stdout);
    expect(json.totals).toEqual({ pending: 2, scheduled: 1, failed: 3 });
    expect(json.channels[0]).toMatchObject({ channel: 'cli_jobs', pending: 2, scheduled: 1, failed: 1 });
    expect(json.channels[0].oldestPendingAgeMs).toBeGreaterThan(9.9 * 60_000);

    const check = await runCli(['status', '--check'], env());
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/unhealthy:\n {2}- 3 failed notifications \(cli_jobs: 1, cli_other: 2\)/);
    expect(check.stdout).toMatch(
      /- cli_jobs: oldest pending notification has waited 6\d\ds \(limit 300s\) .*no listener is connected/,
    );
    const lenient = await runCli(
      ['status', '--check', '--max-age', '1h', '--max-failed', '3', '--json'],
      env(),
    );
    expect(lenient.code).toBe(0);
    expect(JSON.parse(lenient.stdout)).toMatchObject({ healthy: true, problems: [] });
    expect((await runCli(['status', '--check', '--max-age', '1h'], env())).code).toBe(1);
  });

  it('failed lists dead letters; retry re-queues by id, channel or all; purge deletes old ones', async () => {
    await seed();
    const list = await runCli(['failed'], env());
    expect(list.code).toBe(0);
    const rows = list.stdout.split('\n');
    expect(rows[0]).toMatch(/^id\s+channel\s+attempts\s+failed at\s+last error$/);
    expect(rows.slice(1, 4).map((r) => r.split(/\s+/).slice(1, 3))).toEqual([
      ['cli_other', '10'],
      ['cli_other', '1'],
      ['cli_jobs', '10'],
    ]);
    expect(list.stdout).toMatch(/cli_jobs\s+10\s+\S+\s+Error: smtp down$/m);
    expect(list.stdout).toMatch(/^3 failed notifications\. Re-queue with/m);
    const limited = await runCli(['failed', '--channel', 'cli_other', '--limit', '1', '--json'], env());
    const limitedJson = JSON.parse(limited.stdout);
    expect(limitedJson.total).toBe(2);
    expect(limitedJson.failed).toHaveLength(1);
    expect(limitedJson.failed[0]).toMatchObject({
      channel: 'cli_other',
      lastError: 'Error: bad payload',
      payload: { key: 'f2' },
    });

    const [f1] = await t.sql`SELECT id::text FROM pgpubsub.notifications WHERE payload->>'key' = 'f1'`;
    const byId = await runCli(['retry', '--id', f1!.id, '--id', '999999'], env());
    expect(byId.code).toBe(0);
    expect(byId.stdout).toBe(
      'Re-queued 1 failed notification (cli_jobs: 1); listeners were notified.\n1 id matched no failed notification.',
    );
    const [row] =
      await t.sql`SELECT status, attempts, run_at <= now() AS due, failed_at FROM pgpubsub.notifications WHERE id = ${f1!.id}`;
    expect(row).toEqual({ status: 'pending', attempts: 0, due: true, failed_at: null });

    const purge = await runCli(['purge', '--older-than', '1d', '--channel', 'cli_other'], env());
    expect(purge.stdout).toBe('Deleted 1 failed notification that failed more than 1d ago on cli_other.');
    const byChannel = await runCli(['retry', '--channel', 'cli_other', '--json'], env());
    expect(JSON.parse(byChannel.stdout)).toEqual({ retried: 1, byChannel: { cli_other: 1 } });
    expect((await runCli(['retry', '--all'], env())).stdout).toBe(
      'Nothing to retry: no failed notification matches.',
    );
    expect((await runCli(['failed'], env())).stdout).toBe('No failed notifications.');
    expect(await countNotifications(t.sql)).toEqual({ pending: 5, failed: 0 });
  });

  it('retry wakes a running listener at once', async () => {
    await t.sql`
      INSERT INTO pgpubsub.notifications (channel, payload, status, attempts, last_error, failed_at)
      VALUES ('cli_jobs', '{"key":"revived"}', 'failed', 2, 'Error: boom', now())`;
    const run = startCli(['listen', LISTENER, '--poll-interval', '0'], env());
    await run.line(/listening on/);
    const status = JSON.parse((await runCli(['status', '--json'], env())).stdout);
    // The listener is the CLI process itself, or (Node < 22.15, which has no process.execve) the
    // child it re-started with the young-generation cap (docs/operations.md, Memory).
    const listenerPid: number = status.listeners[0]?.presence?.pid;
    const parentOf = (pid: number) =>
      Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
    expect(listenerPid === run.pid || parentOf(listenerPid) === run.pid).toBe(true);
    expect(status.listeners).toEqual([
      expect.objectContaining({
        applicationName: 'drizzle-pgpubsub listen',
        presence: expect.objectContaining({
          host: hostname(),
          pid: listenerPid,
          channels: ['cli_jobs', 'cli_other'],
          lastClaimAt: null,
          handled: 0,
        }),
      }),
    ]);
    const text = (await runCli(['status'], env())).stdout;
    expect(text).toContain(
      `    process ${listenerPid} on ${hostname()}; channels cli_jobs, cli_other; last claim none yet; 0 handled`,
    );
    expect((await runCli(['retry', '--all'], env())).code).toBe(0);
    await waitFor(async () => (await effectCount()) === 1, { what: 'the retried notification handled' });
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
  });
});

describe('examples/authors-posts', () => {
  afterEach(cleanup);

  beforeAll(async () => {
    if (!existsSync('dist/index.js')) {
      throw new Error('dist/ is missing: run `npm run build` (npm test and npm ci do) before this test.');
    }
  });

  it('its listener module runs under `listen`: one post per author', async () => {
    const { migrate } = await import('drizzle-orm/postgres-js/migrator');
    await migrate(t.db, { migrationsFolder: 'examples/authors-posts/drizzle' });
    const run = startCli(['listen', 'examples/authors-posts/listeners.ts', '--processes', '2'], env());
    await run.line(/\[worker 1 pid \d+\] listening on authors/);
    await run.line(/\[worker 2 pid \d+\] listening on authors/);
    await t.sql`INSERT INTO authors (name) SELECT 'author ' || g FROM generate_series(1, 50) g`;
    await waitFor(async () => Number((await t.sql`SELECT count(*)::int AS n FROM posts`)[0]!.n) === 50, {
      timeoutMs: 20_000,
      what: '50 posts',
    });
    const [dups] =
      await t.sql`SELECT count(*)::int AS n FROM (SELECT author_id FROM posts GROUP BY 1 HAVING count(*) > 1) d`;
    expect(dups!.n).toBe(0);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    await t.sql`DROP TABLE posts, authors`;
  });
});
