import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import type postgres from 'postgres';
import { formatDuration } from '../duration.ts';
import { PgPubSubError } from '../errors.ts';
import { TABLE_EXISTS_SQL, tableMissing } from '../storage/missing-table.ts';
import { expandFunctionRef, notificationsRef, packedRef } from '../storage/sql-names.ts';
import { isTransientConnectionError } from './connection-errors.ts';
import { loadPg, pgSql } from './drivers/node-postgres.ts';
import { loadPostgresJs } from './drivers/postgres-js.ts';

/** `host:port` of a URL, for messages (never the password). */
export function databaseTarget(url: string): string {
  try {
    const u = new URL(url);
    const host = u.searchParams.get('host') ?? (decodeURIComponent(u.hostname) || 'localhost');
    const port = u.port || u.searchParams.get('port') || '5432';
    return host.startsWith('/') ? `${host} (socket), port ${port}` : `${host}:${port}`;
  } catch {
    return '(invalid URL)';
  }
}

function reason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const text = error instanceof Error ? error.message : String(error);
  const message = text.split('\n')[0] ?? text;
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}

/** The driver a connection opened from a URL runs on. */
export type UrlDriver = 'postgres-js' | 'pg';

/**
 * A connection the CLI opens from a URL (one session): `sql` in postgres.js's shape (on `pg`, the
 * runtime's adapter), a Drizzle database on it, and `end()`.
 */
export interface UrlConnection {
  driver: UrlDriver;
  sql: postgres.Sql;
  db: PostgresJsDatabase;
  /** Closes the connection; postgres.js waits at most `timeoutSec` for running queries. */
  end(timeoutSec?: number): Promise<void>;
}

const missingModule = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
};

/**
 * The driver for a connection of the CLI's own: `preferred` when given (`listen` uses the driver of
 * the listener's database), else postgres.js when it is installed, else node-postgres (`pg`).
 * Throws `DRIVER_MISSING` when neither is installed.
 */
export async function urlDriver(preferred?: UrlDriver): Promise<UrlDriver> {
  const order: UrlDriver[] = preferred === 'pg' ? ['pg', 'postgres-js'] : ['postgres-js', 'pg'];
  for (const driver of order) {
    try {
      await (driver === 'pg' ? loadPg() : loadPostgresJs());
      return driver;
    } catch (error) {
      if (!missingModule(error)) throw error;
    }
  }
  throw new PgPubSubError(
    'DRIVER_MISSING',
    'No PostgreSQL driver is installed: drizzle-pgpubsub runs on postgres.js or node-postgres. Install the one your app uses: `npm install postgres` or `npm install pg`.',
  );
}

/** Opens one session on `url` with `driver` (not yet checked). */
async function openUrl(
  url: string,
  driver: UrlDriver,
  applicationName: string | undefined,
  connectTimeoutSec: number,
): Promise<UrlConnection> {
  if (driver === 'postgres-js') {
    const { postgres, drizzle } = await loadPostgresJs();
    const sql = postgres(url, {
      max: 1,
      connect_timeout: connectTimeoutSec,
      onnotice: () => {},
      ...(applicationName ? { connection: { application_name: applicationName } } : {}),
    });
    return {
      driver,
      sql,
      db: drizzle({ client: sql }),
      end: async (timeoutSec = 5) => {
        await sql.end({ timeout: timeoutSec });
      },
    };
  }
  const { pg, drizzle } = await loadPg();
  const Pool = (pg as unknown as { Pool: new (config: object) => any }).Pool;
  const pool = new Pool({
    connectionString: url,
    max: 1,
    connectionTimeoutMillis: connectTimeoutSec * 1000,
    ...(applicationName ? { application_name: applicationName } : {}),
  });
  // A connection cut while idle must not end the process (its next query fails instead).
  pool.on('error', () => {});
  let ending: Promise<void> | undefined;
  return {
    driver,
    sql: pgSql(pool, pg),
    db: drizzle({ client: pool }),
    end: () => {
      ending ??= pool.end();
      return ending!;
    },
  };
}

/** Options of {@link connectWithRetry}. */
export interface ConnectOptions {
  /** Give up after this long (default: never). */
  timeoutMs?: number;
  /** First retry delay; doubles per attempt up to `maxDelayMs`. Default 500. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Retry lines go here (warn level). */
  log?: { warn(message: string): void };
  /** Stops waiting (resolves `undefined`). */
  signal?: AbortSignal;
  /** The driver to connect with (default: see {@link urlDriver}). */
  driver?: UrlDriver;
  /** `application_name` of the session. */
  applicationName?: string;
}

/**
 * A connection's failure with the code `connection-errors.ts` reads: `pg` rejects a connect timeout
 * with a code-less error, which is transient like postgres.js's `CONNECT_TIMEOUT`.
 */
function withCode(error: unknown): unknown {
  if (typeof error === 'object' && error !== null && (error as { code?: unknown }).code === undefined) {
    if (/timeout|terminated/i.test(String((error as { message?: unknown }).message))) {
      try {
        (error as { code?: string }).code = 'CONNECT_TIMEOUT';
      } catch {}
    }
  }
  return error;
}

/**
 * Opens a one-session connection on `url` (postgres.js, or node-postgres: {@link urlDriver}) and
 * checks it with `SELECT 1`, retrying transient failures (server down or starting, network) with
 * exponential backoff, logging
 * `database unreachable at host:port (…), retrying in 2s (attempt 3)`. Fails at once on errors a retry
 * cannot fix (bad password, unknown database). Throws `DATABASE_UNREACHABLE` after `timeoutMs`;
 * resolves `undefined` when `signal` aborts.
 */
export async function connectWithRetry(
  url: string,
  options: ConnectOptions = {},
): Promise<UrlConnection | undefined> {
  const { timeoutMs = Number.POSITIVE_INFINITY, initialDelayMs = 500, maxDelayMs = 10_000 } = options;
  const target = databaseTarget(url);
  const driver = await urlDriver(options.driver);
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    if (options.signal?.aborted) return undefined;
    const connection = await openUrl(url, driver, options.applicationName, 10);
    try {
      await connection.sql.unsafe('SELECT 1');
      return connection;
    } catch (caught) {
      const error = withCode(caught);
      await connection.end(0).catch(() => {});
      if (!isTransientConnectionError(error)) {
        throw new PgPubSubError(
          'DATABASE_UNREACHABLE',
          `cannot connect to the database at ${target}: ${reason(error)}. Check DATABASE_URL.`,
          { cause: error },
        );
      }
      const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
      const elapsed = Date.now() - started;
      if (elapsed + delay > timeoutMs) {
        throw new PgPubSubError(
          'DATABASE_UNREACHABLE',
          `database unreachable at ${target} (${reason(error)}); gave up after ${attempt} attempt${attempt === 1 ? '' : 's'} in ${formatDuration(elapsed)}. Check DATABASE_URL and that PostgreSQL is running.`,
          { cause: error },
        );
      }
      options.log?.warn(
        `database unreachable at ${target} (${reason(error)}), retrying in ${formatDuration(delay)} (attempt ${attempt})`,
      );
      const aborted = await new Promise<boolean>((resolve) => {
        const onAbort = () => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          options.signal?.removeEventListener('abort', onAbort);
          resolve(false);
        }, delay);
        options.signal?.addEventListener('abort', onAbort, { once: true });
      });
      if (aborted) return undefined;
    }
  }
}

/**
 * The one storage check (listener start, CLI admin commands): throws `TABLE_MISSING` unless
 * `schema`.notifications exists and this role may use it, `DATABASE_UNREACHABLE` when the check
 * itself fails.
 */
export async function assertNotificationsTable(
  sql: postgres.Sql,
  schema: string,
  ordered = false,
  packed = false,
): Promise<void> {
  const table = notificationsRef(schema);
  let found: { ok: boolean } | undefined;
  try {
    [found] = (await sql.unsafe(TABLE_EXISTS_SQL, [table])) as unknown as { ok: boolean }[];
  } catch (error) {
    if ((error as { code?: string }).code === '42501') {
      throw new PgPubSubError(
        'TABLE_MISSING',
        `This database role may not use ${table}: ${(error as Error).message}. Grant it the listener privileges listed in docs/security.md.`,
        { cause: error },
      );
    }
    throw new PgPubSubError(
      'DATABASE_UNREACHABLE',
      `Cannot reach the database: ${(error as Error).message}. Check DATABASE_URL and that PostgreSQL is running.`,
      { cause: error },
    );
  }
  if (!found?.ok) throw tableMissing(schema);
  if (packed) {
    const [row] = await sql.unsafe(
      `SELECT to_regprocedure($1) IS NOT NULL AS fn, to_regclass($2) IS NOT NULL AS tbl,
  CASE WHEN to_regprocedure($1) IS NOT NULL THEN has_function_privilege(to_regprocedure($1), 'EXECUTE') END AS run,
  CASE WHEN to_regclass($2) IS NOT NULL THEN has_table_privilege(to_regclass($2), 'SELECT') END AS read`,
      [`${expandFunctionRef(schema)}(text, jsonb)`, packedRef(schema)],
    );
    if (!row?.fn || !row.tbl) {
      throw new PgPubSubError(
        'TABLE_MISSING',
        `${packedRef(schema)} or ${expandFunctionRef(schema)}() does not exist: trigger channels of this drizzle-pgpubsub need storage version 5 (packed notifications). Run \`drizzle-pgpubsub generate\` and apply the migration it writes (\`drizzle-kit migrate\`).`,
      );
    }
    if (!row.run || !row.read) {
      throw new PgPubSubError(
        'TABLE_MISSING',
        `This database role may not ${row.run ? 'read' : 'execute'} ${row.run ? packedRef(schema) : `${expandFunctionRef(schema)}(text, jsonb)`}, which listeners of trigger channels need (storage version 5). Grant it the listener privileges listed in docs/security.md.`,
      );
    }
  }
  if (ordered) {
    const [column] = await sql.unsafe(
      `SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'ordering_key' AND NOT attisdropped`,
      [table],
    );
    if (!column) {
      throw new PgPubSubError(
        'TABLE_MISSING',
        `${table} has no "ordering_key" column, which ordered channels need (storage version 4). Run \`drizzle-pgpubsub generate\` and apply the migration it writes (\`drizzle-kit migrate\`).`,
      );
    }
  }
}

/** An open admin connection: one session (postgres.js or node-postgres) and a Drizzle database on it. */
export interface AdminConnection {
  driver: UrlDriver;
  sql: postgres.Sql;
  db: PostgresJsDatabase;
  close(): Promise<void>;
}

/**
 * For `status` and the admin commands: connects (postgres.js when installed, else node-postgres:
 * {@link urlDriver}) with retries for at most
 * `connectTimeoutMs` (retry warnings to `log`, else lines on stderr), and checks that the notifications table exists.
 */
export async function openAdminConnection(options: {
  url: string;
  schema: string;
  connectTimeoutMs: number;
  /** Where retry warnings go. Default: a `warning: …` line on stderr (the CLI's admin commands). */
  log?: { warn(message: string): void };
}): Promise<AdminConnection> {
  const { url } = options;
  const connection = await connectWithRetry(url, {
    timeoutMs: options.connectTimeoutMs,
    log: options.log ?? { warn: (message) => process.stderr.write(`warning: ${message}\n`) },
    applicationName: 'drizzle-pgpubsub admin',
  });
  if (!connection)
    throw new PgPubSubError('DATABASE_UNREACHABLE', `database unreachable at ${databaseTarget(url)}.`);
  const close = () => connection.end(5);
  try {
    await assertNotificationsTable(connection.sql, options.schema);
  } catch (error) {
    await close();
    throw error;
  }
  return { driver: connection.driver, sql: connection.sql, db: connection.db, close };
}
