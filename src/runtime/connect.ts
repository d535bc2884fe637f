import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { formatDuration } from '../duration.ts';
import { PgPubSubError } from '../errors.ts';
import { TABLE_EXISTS_SQL, tableMissing } from '../storage/missing-table.ts';
import { notificationsRef } from '../storage/sql-names.ts';
import { isTransientConnectionError } from './connection-errors.ts';

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

/**
 * The one storage check (listener start, CLI admin commands): throws `TABLE_MISSING` unless
 * `schema`.notifications exists and this role may use it, `DATABASE_UNREACHABLE` when the check
 * itself fails.
 */
export async function assertNotificationsTable(
  sql: postgres.Sql,
  schema: string,
  ordered = false,
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

/** An open admin connection: postgres.js client and Drizzle database on it. */
export interface AdminConnection {
  sql: postgres.Sql;
  db: PostgresJsDatabase;
  close(): Promise<void>;
}

/**
 * For `status` and the admin commands: connects with retries for at most
 * `connectTimeoutMs` (retry lines on stderr), and checks that the notifications table exists.
 */
export async function openAdminConnection(options: {
  url: string;
  schema: string;
  connectTimeoutMs: number;
}): Promise<AdminConnection> {
  const { url } = options;
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
  return { sql, db: drizzle({ client: sql }), close };
}
