import postgres from 'postgres';
import { withDatabase } from '../../tools/embedded-pg.ts';

/** A short-lived admin client on the server's `postgres` database. */
export function adminClient(adminUrl: string): postgres.Sql {
  return postgres(adminUrl, { max: 2, onnotice: () => {} });
}

let counter = 0;

/**
 * Creates a fresh database cloned from `template` and returns its URL. The name is unique per run, so
 * every measurement starts from the same empty state.
 */
export async function freshDatabase(
  admin: postgres.Sql,
  adminUrl: string,
  prefix: string,
  template: string,
): Promise<{ name: string; url: string }> {
  const name = `bench_${prefix}_${process.pid}_${++counter}`;
  await admin.unsafe(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
  return { name, url: withDatabase(adminUrl, name) };
}

export async function dropDatabase(admin: postgres.Sql, name: string): Promise<void> {
  await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

/** Creates a template database, runs `setup` against it, then closes it to connections. */
export async function makeTemplate(
  admin: postgres.Sql,
  adminUrl: string,
  name: string,
  setup: (url: string) => Promise<void>,
): Promise<void> {
  await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  await setup(withDatabase(adminUrl, name));
  // No connections: autovacuum leaves it alone (its visits would count as transactions in W3's numbers).
  await admin.unsafe(`ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS false`);
}

export async function dropTemplate(admin: postgres.Sql, name: string): Promise<void> {
  await admin.unsafe(`ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS true`).catch(() => {});
  await dropDatabase(admin, name);
}

/** Committed + rolled-back transactions of a database so far (cumulative statistics). */
export async function xactCount(admin: postgres.Sql, database: string): Promise<number> {
  const [row] = await admin`
    SELECT (xact_commit + xact_rollback)::int8 AS n FROM pg_stat_database WHERE datname = ${database}`;
  return Number(row?.n ?? 0);
}

/** Waits until no backend is connected to `database` (their statistics are flushed at exit). */
export async function waitNoBackends(
  admin: postgres.Sql,
  database: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await admin`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${database} AND pid <> pg_backend_pid()`;
    if (row?.n === 0) return;
    if (Date.now() > deadline) throw new Error(`backends of ${database} did not exit`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What the report says about the server. */
export interface ServerInfo {
  version: string;
  versionNum: number;
  settings: Record<string, string>;
}

const SETTINGS = [
  'shared_buffers',
  'max_connections',
  'fsync',
  'synchronous_commit',
  'wal_level',
  'work_mem',
  'max_wal_size',
  'checkpoint_timeout',
  'autovacuum',
  'autovacuum_naptime',
  'jit',
];

export async function serverInfo(admin: postgres.Sql): Promise<ServerInfo> {
  const [v] = await admin`SELECT version() AS version, current_setting('server_version_num')::int AS num`;
  const rows = await admin`SELECT name, setting, unit FROM pg_settings WHERE name = ANY(${SETTINGS})`;
  const settings: Record<string, string> = {};
  for (const r of rows) settings[r.name] = r.unit && r.unit !== '' ? `${r.setting} (${r.unit})` : r.setting;
  return { version: v!.version as string, versionNum: v!.num as number, settings };
}

/** ANALYZE a database (after a bulk enqueue, the same for every system). */
export async function analyze(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`ANALYZE`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
