import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { PgPubSubError } from '../errors.ts';
import { notificationsRef } from '../runtime/claim.ts';
import { errorMessage } from './exit-codes.ts';
import { formatDuration } from './format.ts';
import type { Logger } from './log.ts';

/**
 * The database URL of a command: `--database-url`, else `DATABASE_URL`. Throws `NO_DATABASE_URL`
 * (with what to do) when neither is set, `INVALID_OPTIONS` when it is not a postgres URL.
 */
export function resolveDatabaseUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const url = flag ?? env.DATABASE_URL;
  if (url === undefined || url.trim() === '') {
    throw new PgPubSubError(
      'NO_DATABASE_URL',
      'DATABASE_URL is not set. Set it to your PostgreSQL connection URL (export DATABASE_URL=postgres://user:password@host:5432/dbname) or pass --database-url <url>.',
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PgPubSubError(
      'NO_DATABASE_URL',
      `DATABASE_URL is not a valid URL. Expected postgres://user:password@host:5432/dbname.`,
    );
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new PgPubSubError(
      'NO_DATABASE_URL',
      `DATABASE_URL must start with postgres:// or postgresql://, got ${parsed.protocol}//… (expected postgres://user:password@host:5432/dbname).`,
    );
  }
  return url;
}

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

const RETRYABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOENT', // unix socket not there yet
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovery)
  '53300', // too_many_connections
  '08000',
  '08001',
  '08004',
  '08006',
]);

/** True for errors that may go away by themselves (server down, starting, overloaded, network). */
export function isTransientConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRYABLE.has(code);
}

function reason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = errorMessage(error);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}

/** Options of {@link connectWithRetry}. */
export interface ConnectOptions {
  /** Give up after this long (default: never). */
  timeoutMs?: number;
  /** First retry delay; doubles per attempt up to `maxDelayMs`. Default 500. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Retry lines go here (warn level). */
  log?: Pick<Logger, 'warn'>;
  /** Stops waiting (resolves `undefined`). */
  signal?: AbortSignal;
  /** postgres.js options for the returned client. */
  clientOptions?: postgres.Options<{}>;
}

/**
 * Opens a postgres.js client on `url` and checks it with `SELECT 1`, retrying transient failures
 * (server down or starting, network) with exponential backoff, logging
 * `database unreachable at host:port (…), retrying in 2s (attempt 3)`. Fails at once on errors a retry
 * cannot fix (bad password, unknown database). Throws `DATABASE_UNREACHABLE` after `timeoutMs`;
 * resolves `undefined` when `signal` aborts.
 */
export async function connectWithRetry(
  url: string,
  options: ConnectOptions = {},
): Promise<postgres.Sql | undefined> {
  const { timeoutMs = Number.POSITIVE_INFINITY, initialDelayMs = 500, maxDelayMs = 10_000 } = options;
  const target = databaseTarget(url);
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    if (options.signal?.aborted) return undefined;
    const sql = postgres(url, {
      max: 1,
      connect_timeout: 10,
      onnotice: () => {},
      ...options.clientOptions,
    });
    try {
      await sql`SELECT 1`;
      return sql;
    } catch (error) {
      await sql.end({ timeout: 0 }).catch(() => {});
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

/** The error a listener gives when the notifications table is missing (same wording). */
export function tableMissing(table: string): PgPubSubError {
  return new PgPubSubError(
    'TABLE_MISSING',
    `The notifications table ${table} does not exist. Run \`npx drizzle-pgpubsub generate\` and then \`npx drizzle-kit migrate\`.`,
  );
}

/** Throws `TABLE_MISSING` unless `schema`.notifications exists. */
export async function assertNotificationsTable(sql: postgres.Sql, schema: string): Promise<void> {
  const table = notificationsRef(schema);
  const [row] = await sql.unsafe('SELECT to_regclass($1) IS NOT NULL AS ok', [table]);
  if (!(row as unknown as { ok: boolean }).ok) throw tableMissing(table);
}

/** An open admin connection: postgres.js client and Drizzle database on it. */
export interface AdminConnection {
  sql: postgres.Sql;
  db: PostgresJsDatabase;
  close(): Promise<void>;
}

/**
 * For `status` and the admin commands: resolves the URL, connects with retries for at most
 * `connectTimeoutMs` (retry lines on stderr), and checks that the notifications table exists.
 */
export async function openAdminConnection(options: {
  databaseUrl: string | undefined;
  schema: string;
  connectTimeoutMs: number;
}): Promise<AdminConnection> {
  const url = resolveDatabaseUrl(options.databaseUrl);
  const sql = await connectWithRetry(url, {
    timeoutMs: options.connectTimeoutMs,
    log: { warn: (message) => process.stderr.write(`warning: ${message}\n`) },
    clientOptions: { connection: { application_name: 'drizzle-pgpubsub admin' } },
  });
  if (!sql)
    throw new PgPubSubError('DATABASE_UNREACHABLE', `database unreachable at ${databaseTarget(url)}.`);
  const close = () => sql.end({ timeout: 5 });
  try {
    await assertNotificationsTable(sql, options.schema);
  } catch (error) {
    await close();
    throw error;
  }
  return { sql, db: drizzle(sql), close };
}
