/**
 * Everything the listener does on postgres.js 3 and 4 that depends on the driver, in one file: the
 * dedicated LISTEN session ({@link postgresSessionDriver}) and the client router handler
 * transactions are built on ({@link postgresTransactionClient}). (The rest of the runtime speaks
 * postgres.js's `unsafe`/`reserve` surface, which `drivers/node-postgres.ts` provides over `pg`.)
 *
 * `postgres` is never imported statically (an app on node-postgres need not install it):
 * {@link loadPostgresJs} imports it, and `drizzle-orm/postgres-js`, when a listener on a postgres.js
 * database starts or a CLI command connects with it.
 *
 * @module
 */
import type postgres from 'postgres';
import type { SessionConnection, SessionDriver } from '../listen-session.ts';

/** What {@link loadPostgresJs} loads. */
export interface PostgresJsDriver {
  /** postgres.js's default export, the client factory. */
  postgres: (urlOrOptions?: any, options?: any) => postgres.Sql;
  /** `drizzle()` of `drizzle-orm/postgres-js`. */
  drizzle: (config: any) => any;
}

/** Loads `postgres` and `drizzle-orm/postgres-js` (only ever for a postgres.js database or the CLI). */
export async function loadPostgresJs(): Promise<PostgresJsDriver> {
  const [pgModule, drizzleModule] = await Promise.all([
    import('postgres'),
    import('drizzle-orm/postgres-js'),
  ]);
  const factory = ((pgModule as any).default ?? pgModule) as PostgresJsDriver['postgres'];
  return { postgres: factory, drizzle: (drizzleModule as any).drizzle };
}

/** True when `client` is a postgres.js client (what `drizzle({ client: postgres(url) })` holds). */
export function isPostgresJs(client: unknown): client is postgres.Sql {
  const c = client as any;
  return typeof c?.begin === 'function' && typeof c?.unsafe === 'function';
}

/**
 * The client a Drizzle postgres.js database builds its transactions on: `begin(fn)` runs fn at once
 * on the connection `pending()` returns (the claim connection, wrapped by the handler scope) instead
 * of opening a transaction; everything else is the user's client.
 */
export function postgresTransactionClient(client: postgres.Sql, pending: () => unknown): unknown {
  return new Proxy(client, {
    get: (target, key) =>
      key === 'begin' ? (fn: (c: unknown) => unknown) => fn(pending()) : (target as any)[key],
  });
}

/**
 * A {@link SessionDriver} for postgres.js 3 and 4: a single-connection client per session, made from
 * the public `sql.options` of the user's client (host lists, ssl, auth, `connection` parameters: all
 * as the user configured them; postgres.js makes its own LISTEN client the same way), or from
 * `listenUrl` (e.g. a direct URL when the pool goes through PgBouncer).
 */
export function postgresSessionDriver(
  sql: postgres.Sql,
  driver: PostgresJsDriver,
  listenUrl?: string,
): SessionDriver {
  const { postgres } = driver;
  return {
    async connect(events) {
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        events.onClose();
      };
      const session = {
        max: 1,
        idle_timeout: 0,
        max_lifetime: null,
        fetch_types: false,
        onnotice: () => {},
        onnotify: (channel: string, payload: string) => !closed && events.onNotify(channel, payload),
        onclose: close,
      };
      const client = listenUrl
        ? postgres(listenUrl, session)
        : postgres({ ...(sql.options as unknown as postgres.Options<{}>), ...session });
      const connection: SessionConnection = {
        async query(text, params) {
          // A max-1 client reconnects by itself for the next statement: never on a closed session.
          if (closed) throw new Error('the LISTEN session is closed');
          const rows = await client.unsafe(text, params as postgres.ParameterOrJSON<never>[]);
          if (closed) throw new Error('the LISTEN session closed');
          return rows as unknown as Record<string, unknown>[];
        },
        async end() {
          closed = true;
          await client.end({ timeout: 1 });
        },
      };
      try {
        await connection.query('SELECT 1', []);
      } catch (error) {
        closed = true;
        await client.end({ timeout: 0 }).catch(() => {});
        throw error;
      }
      return connection;
    },
  };
}
