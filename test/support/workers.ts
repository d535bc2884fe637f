import { type ChildProcess, fork } from 'node:child_process';
import { join, resolve } from 'node:path';
import { inject } from 'vitest';

/**
 * The fixture as plain JavaScript from the run's transpiled build (test/support/global-setup.ts),
 * or else the TypeScript source run through jiti (a quarter of the start-up CPU without it).
 */
function fixtureEntry(fixture: string): { path: string; execArgv: string[] } {
  let script: string | undefined;
  try {
    script = inject('cliScript') || undefined;
  } catch {}
  if (script) {
    const root = resolve(script, '../../..');
    return { path: join(root, 'test', 'fixtures', fixture.replace(/\.ts$/, '.js')), execArgv: [] };
  }
  return {
    path: join(import.meta.dirname, '..', 'fixtures', fixture),
    execArgv: ['--import', 'jiti/register'],
  };
}

/**
 * Listener worker processes for multi-process tests: `start` forks a fixture (transpiled once per
 * run, see {@link fixtureEntry}) and resolves once it reports ready over IPC; `killAll` SIGKILLs and
 * awaits every worker still running.
 */
export function workerPool(fixture: string, databaseUrl: () => string) {
  const children: ChildProcess[] = [];
  const exited = (child: ChildProcess) =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => child.once('exit', () => resolve()));
  function start(name: string, env: Record<string, string> = {}): Promise<ChildProcess> {
    const entry = fixtureEntry(fixture);
    const child = fork(entry.path, {
      execArgv: entry.execArgv,
      env: { ...process.env, DATABASE_URL: databaseUrl(), WORKER: name, ...env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    return new Promise((resolve, reject) => {
      child.once('message', () => resolve(child));
      child.once('exit', (code) =>
        reject(new Error(`worker ${name} exited with ${code} before it was ready`)),
      );
    });
  }
  async function killAll(): Promise<void> {
    const all = children.splice(0);
    for (const c of all) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(all.map(exited));
  }
  return { start, exited, killAll };
}
