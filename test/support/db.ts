import { randomBytes } from 'node:crypto';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { afterAll, beforeAll, inject } from 'vitest';
import { withDatabase } from '../../tools/embedded-pg.ts';

/** A database of its own for one test file. */
export interface TestDb {
  /** Connection URL of this file's database. */
  url: string;
  name: string;
  sql: postgres.Sql;
  db: PostgresJsDatabase;
  /** Opens another client on the same database, closed after the file. */
  client(options?: postgres.Options<{}>): postgres.Sql;
}

/**
 * Clones the migrated template into a fresh database before the file's tests and drops it after.
 * Fields are filled in `beforeAll`; read them inside tests and hooks.
 */
export function useTestDatabase(setupSql: string[] = []): TestDb {
  const admin = () => postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => {} });
  const clients: postgres.Sql[] = [];
  const name = `t_${process.env.VITEST_POOL_ID ?? '0'}_${randomBytes(4).toString('hex')}`;
  const handle = { name } as TestDb;
  beforeAll(async () => {
    const a = admin();
    await a.unsafe(`CREATE DATABASE "${name}" TEMPLATE "${inject('pgTemplate')}"`);
    await a.end();
    handle.url = withDatabase(inject('pgAdminUrl'), name);
    handle.client = (options = {}) => {
      const c = postgres(handle.url, { onnotice: () => {}, ...options });
      clients.push(c);
      return c;
    };
    handle.sql = handle.client({ max: 10 });
    handle.db = drizzle({ client: handle.sql });
    for (const statement of setupSql) await handle.sql.unsafe(statement);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
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
