import { fork } from 'node:child_process';

/**
 * The semi-space size (MB) `listen` starts its listener processes with unless told otherwise: V8's
 * young generation otherwise grows to 2 × 16 MB (Node 20) or 2 × 64 MB (Node 24 on a large host)
 * while a backlog drains (docs/operations.md, Memory; docs/benchmarks.md, W5).
 */
export const DEFAULT_SEMI_SPACE_MB = 2;

/**
 * Set in the environment of a listener process that `listen` re-started with the cap (one level
 * only): `exec` when it replaced the original process, `fork` when it runs as its child.
 */
export const CAPPED_ENV = 'PGPUBSUB_LISTEN_CAPPED';

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

const HEAP_FLAG = /^--max[-_](?:semi[-_]space|old[-_]space|young[-_]generation)[-_]size(?:=|$)/;

/**
 * The user's own heap-size flag (`--max-semi-space-size`, `--max-old-space-size` or
 * `--max-young-generation-size`, dashes or underscores) in `execArgv` or `NODE_OPTIONS`, if any:
 * when the user sized the heap, `listen` adds nothing.
 */
export function userHeapFlag(
  execArgv: readonly string[],
  nodeOptions: string | undefined,
): string | undefined {
  const fromOptions = (nodeOptions ?? '').split(/\s+/).filter(Boolean);
  return [...execArgv, ...fromOptions].find((flag) => HEAP_FLAG.test(flag));
}

/**
 * The V8 flags to start listener processes with: `--max-semi-space-size=<mb>`, or none when the cap
 * is off (`semiSpaceMb` undefined) or the user set a heap-size flag of their own.
 */
export function memoryCapFlags(
  semiSpaceMb: number | undefined,
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): string[] {
  if (semiSpaceMb === undefined || userHeapFlag(execArgv, nodeOptions) !== undefined) return [];
  return [`--max-semi-space-size=${semiSpaceMb}`];
}

/**
 * Runs the same `listen` command once more with `flags` (V8 reads them only at start-up) and resolves
 * to its exit code. Where Node has `process.execve` (22.15+), the process replaces itself: same pid,
 * same signals, nothing left behind. Elsewhere (Node 20) it runs a child process that inherits stdio
 * and the environment (plus {@link CAPPED_ENV}); the first SIGTERM/SIGINT is passed on as an IPC stop
 * request (a terminal's Ctrl-C, which reaches both processes, is then still one shutdown), a second
 * one as a forced exit. The child stops by itself if this process dies (its IPC channel closes).
 */
export function runCapped(
  script: string,
  argv: readonly string[],
  flags: readonly string[],
): Promise<number> {
  const execve = (process as { execve?: Execve }).execve;
  if (typeof execve === 'function') {
    const args = [process.execPath, ...process.execArgv, ...flags, script, ...argv];
    try {
      execve.call(process, process.execPath, args, { ...process.env, [CAPPED_ENV]: 'exec' });
    } catch {
      // Not replaced (e.g. the platform refused): run it as a child instead.
    }
  }
  const child = fork(script, [...argv], {
    execArgv: [...process.execArgv, ...flags],
    env: { ...process.env, [CAPPED_ENV]: 'fork' },
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    const type = ++signals === 1 ? 'shutdown' : 'force-exit';
    if (child.connected) child.send({ type, reason: signal }, (error) => error && child.kill('SIGTERM'));
    else child.kill(signals === 1 ? 'SIGTERM' : 'SIGKILL');
  };
  const onExit = () => child.kill('SIGTERM');
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('exit', onExit);
  return new Promise((resolve) => {
    const done = (code: number) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.off('exit', onExit);
      resolve(code);
    };
    child.on('exit', (code, signal) => done(code ?? (signal ? 1 : 0)));
    child.on('error', (error) => {
      process.stderr.write(`drizzle-pgpubsub listen: cannot start the listener process: ${error.message}\n`);
      if (child.pid === undefined) done(1);
    });
  });
}
