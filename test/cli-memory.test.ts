import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  buildCli,
  type CliRun,
  childrenOf,
  killLeftovers,
  removeCli,
  runCli,
  startCli,
} from './fixtures/cli-run.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

/**
 * `listen` starts its listener processes with a capped young generation (`--max-semi-space-size=2`)
 * unless the user sized the heap or turned the cap off (docs/operations.md, Memory). The fixture
 * module allocates short-lived garbage on load and reports its `process.execArgv` and the size of
 * V8's new space: uncapped, Node grows it to 2 × 16 MB or more; capped at 2 MB, it stays at 4 MB (Node 24: a page more).
 */
const MODULE = 'test/fixtures/cli-memory.ts';
const t = useTestDatabase();
const env = (extra: Record<string, string> = {}) => ({ DATABASE_URL: t.url, ...extra });

interface Report {
  pid: number;
  execArgv: string[];
  newSpaceMb: number;
  worker: string | null;
}

async function reports(run: CliRun, n: number): Promise<Report[]> {
  const lines = await waitFor(
    () => {
      const found = run.stderr.filter((l) => l.startsWith('memory-report '));
      return found.length >= n ? found : undefined;
    },
    { timeoutMs: 30_000, what: `${n} memory report(s); output so far:\n${run.all()}` },
  );
  return lines.map((l) => JSON.parse(l.slice('memory-report '.length)) as Report);
}

/** Node 22.15+ replaces the process (`process.execve`); Node 20 runs the listener as a child. */
const EXECVE = typeof (process as { execve?: unknown }).execve === 'function';
const semiFlags = (r: Report) => r.execArgv.filter((f) => f.startsWith('--max-semi-space-size'));

beforeAll(buildCli);
afterAll(removeCli);
afterEach(killLeftovers);

describe('listen: memory cap', () => {
  it('re-starts the listener with --max-semi-space-size=2 by default; SIGTERM stops it, exit 0', async () => {
    const run = startCli(['listen', MODULE], env());
    const [report] = await reports(run, 1);
    expect(semiFlags(report!)).toEqual(['--max-semi-space-size=2']);
    expect(report!.newSpaceMb).toBeLessThanOrEqual(5);
    if (EXECVE) {
      expect(report!.pid).toBe(run.pid);
      expect(childrenOf(run.pid)).toEqual([]);
    } else {
      expect(report!.pid).not.toBe(run.pid);
      expect(childrenOf(run.pid)).toEqual([report!.pid]);
    }
    await run.line(/INFO .*listening on cli_memory/);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.all()).toMatch(/stopping \(SIGTERM\)/);
    expect(run.all()).toMatch(/stopped after/);
  });

  it('a second signal forces the capped listener out (exit 1)', async () => {
    const run = startCli(['listen', MODULE], env());
    await run.line(/INFO .*listening on cli_memory/);
    const [report] = await reports(run, 1);
    // A handler that runs until aborted keeps the listener stopping until the second signal.
    await t.sql`SELECT pgpubsub.notify('cli_memory', '{"n":1}'::jsonb)`;
    await run.line(/memory-handler-start/);
    run.child.kill('SIGINT');
    await run.line(/stopping \(SIGINT\)/);
    run.child.kill('SIGINT');
    expect(await run.exited).toEqual({ code: 1, signal: null });
    await waitFor(() => childrenOf(run.pid).length === 0 || undefined, { timeoutMs: 5000, what: 'no child' });
    expect(run.all()).toMatch(/SIGINT again: exiting now/);
    // Its notification rolled back to pending: the next tests' listeners must not block on it.
    await t.sql`DELETE FROM pgpubsub.notifications`;
    expect(semiFlags(report!)).toEqual(['--max-semi-space-size=2']);
  });

  it("the user's own heap flags win: no re-start, no flag added", async () => {
    for (const options of ['--max-semi-space-size=8', '--max-old-space-size=512']) {
      const run = startCli(['listen', MODULE], env({ NODE_OPTIONS: options }));
      const [report] = await reports(run, 1);
      expect(report!.pid).toBe(run.pid);
      expect(semiFlags(report!)).toEqual([]);
      // 8 MB semi-spaces: the new space grows past what the default cap allows.
      if (options.startsWith('--max-semi')) expect(report!.newSpaceMb).toBeGreaterThan(4);
      await run.line(/INFO .*listening on cli_memory/);
      run.child.kill('SIGTERM');
      expect(await run.exited).toEqual({ code: 0, signal: null });
    }
  });

  it('--no-memory-cap runs in one process with no flag; --semi-space-mb sets the size', async () => {
    const off = startCli(['listen', MODULE, '--no-memory-cap'], env());
    const [plain] = await reports(off, 1);
    expect(plain!.pid).toBe(off.pid);
    expect(semiFlags(plain!)).toEqual([]);
    off.child.kill('SIGTERM');
    expect((await off.exited).code).toBe(0);

    const four = startCli(['listen', MODULE, '--semi-space-mb', '4'], env());
    const [capped] = await reports(four, 1);
    expect(semiFlags(capped!)).toEqual(['--max-semi-space-size=4']);
    expect(capped!.newSpaceMb).toBeLessThanOrEqual(9);
    four.child.kill('SIGTERM');
    expect((await four.exited).code).toBe(0);
  });

  it('--processes: every worker gets the cap, the supervisor does not re-start itself', async () => {
    const run = startCli(['listen', MODULE, '--processes', '2'], env());
    const list = await reports(run, 2);
    expect(list.map((r) => r.worker).sort()).toEqual(['1', '2']);
    for (const r of list) {
      expect(semiFlags(r)).toEqual(['--max-semi-space-size=2']);
      expect(r.newSpaceMb).toBeLessThanOrEqual(5);
    }
    expect(childrenOf(run.pid).sort()).toEqual(list.map((r) => r.pid).sort());
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it('--no-memory-cap with --semi-space-mb is a usage error (exit 2)', async () => {
    const result = await runCli(['listen', MODULE, '--no-memory-cap', '--semi-space-mb', '3'], env());
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--no-memory-cap and --semi-space-mb contradict each other/);
  });
});
