import { randomBytes } from 'node:crypto';
import { drizzle as nodePgDrizzle } from 'drizzle-orm/node-postgres';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, inject } from 'vitest';
import { withDatabase } from '../../tools/embedded-pg.ts';

/**
 * The driver test databases use: `PGPUBSUB_TEST_DRIVER=pg` runs the suite on node-postgres (`t.db`
 * and `t.drizzle()` are `drizzle-orm/node-postgres` databases on a `pg.Pool`), else postgres.js.
 */
export const TEST_DRIVER: 'postgres-js' | 'pg' =
  process.env.PGPUBSUB_TEST_DRIVER === 'pg' ? 'pg' : 'postgres-js';

/** `url` with `application_name` set (both drivers read it from the URL). */
export function withAppName(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', name);
  return u.toString();
}

/** Closes the client of a database made by `t.drizzle()` now (postgres.js: within 1 s). */
export async function closeDb(db: unknown): Promise<void> {
  const client = (db as { $client: { end(options?: unknown): Promise<unknown> } }).$client;
  await (TEST_DRIVER === 'pg' ? client.end() : client.end({ timeout: 1 }));
}

/** A database of its own for one test file. */
export interface TestDb {
  /** Connection URL of this file's database. */
  url: string;
  name: string;
  sql: postgres.Sql;
  db: PostgresJsDatabase;
  /** Opens another client on the same database, closed after the file. */
  client(options?: postgres.Options<{}>): postgres.Sql;
  /**
   * Another Drizzle database on this file's database (or on `url`, e.g. through a proxy), on the
   * test driver ({@link TEST_DRIVER}), with a pool of `max` connections and Drizzle's `config`
   * (casing, schema, relations, logger). Closed after the file, or with {@link closeDb}.
   * Typed as postgres.js's: the listener's API is the same on both.
   */
  drizzle(max?: number, config?: Record<string, unknown>, url?: string): PostgresJsDatabase;
}

/**
 * Clones the migrated template into a fresh database before the file's tests and drops it after.
 * Fields are filled in `beforeAll`; read them inside tests and hooks.
 */
export function useTestDatabase(setupSql: string[] = []): TestDb {
  const admin = () => postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => {} });
  const clients: { end(): Promise<unknown> }[] = [];
  const name = `t_${process.env.VITEST_POOL_ID ?? '0'}_${randomBytes(4).toString('hex')}`;
  const handle = { name } as TestDb;
  beforeAll(async () => {
    const a = admin();
    await a.unsafe(`CREATE DATABASE "${name}" TEMPLATE "${inject('pgTemplate')}"`);
    await a.end();
    handle.url = withDatabase(inject('pgAdminUrl'), name);
    handle.client = (options = {}) => {
      const c = postgres(handle.url, { onnotice: () => {}, ...options });
      clients.push({ end: () => c.end({ timeout: 5 }) });
      return c;
    };
    handle.drizzle = (max = 10, config = {}, url = handle.url) => {
      if (TEST_DRIVER === 'postgres-js') {
        const c = postgres(url, { onnotice: () => {}, max, connect_timeout: 3 });
        clients.push({ end: () => c.end({ timeout: 1 }) });
        return drizzle({ client: c, ...config } as any);
      }
      const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 3000 });
      // Idle connections terminated by a test must not end the process.
      pool.on('error', () => {});
      const end = pool.end.bind(pool);
      let ending: Promise<void> | undefined;
      pool.end = () => {
        ending ??= end();
        return ending;
      };
      clients.push(pool);
      return nodePgDrizzle({ client: pool, ...config } as any) as unknown as PostgresJsDatabase;
    };
    handle.sql = handle.client({ max: 10 });
    // drizzle() also sets the raw client's json and date (de)serializers, which tests writing
    // through `t.sql` rely on: done on both drivers, so `t.sql` behaves the same.
    const onSql = drizzle({ client: handle.sql });
    handle.db = TEST_DRIVER === 'postgres-js' ? onSql : handle.drizzle(10);
    for (const statement of setupSql) await handle.sql.unsafe(statement);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end()));
    const a = admin();
    // FORCE terminates the sessions left, but a backend busy in a long statement may take a moment
    // to go (55006 "being accessed by other users"): try again for a while.
    for (let attempt = 1; ; attempt++) {
      try {
        await a.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        break;
      } catch (error) {
        if ((error as { code?: string }).code !== '55006' || attempt >= 60) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    await a.end();
  });
  return handle;
}
