import { readdir, readFile } from 'node:fs/promises';
import postgres from 'postgres';
import { withDatabase } from '../../tools/embedded-pg.ts';

/** A short-lived admin client on the server's `postgres` database. */
export function adminClient(adminUrl: string): postgres.Sql {
  return postgres(adminUrl, { max: 2, onnotice: () => {} });
}

let counter = 0;

export interface Database {
  name: string;
  url: string;
}

/**
 * Fresh databases cloned from the migrated templates, so every measurement starts from the same empty
 * state. CREATE DATABASE costs most of a second here (the template is WAL-logged and synced), so in
 * `eager` mode (quick runs, where timings do not matter) the next database per template is created
 * in the background and drops are deferred to close().
 */
export class Databases {
  private readonly spares = new Map<string, Promise<Database>>();
  private readonly pending: Promise<unknown>[] = [];

  constructor(
    private readonly admin: postgres.Sql,
    private readonly adminUrl: string,
    private readonly eager: boolean,
  ) {}

  private async create(template: string): Promise<Database> {
    const name = `bench_${template.replace(/^bench_tpl_/, '').replace(/_\d+$/, '')}_${process.pid}_${++counter}`;
    await this.admin.unsafe(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
    return { name, url: withDatabase(this.adminUrl, name) };
  }

  async fresh(template: string): Promise<Database> {
    if (!this.eager) return this.create(template);
    const next = this.spares.get(template) ?? this.create(template);
    const spare = this.create(template);
    spare.catch(() => {});
    this.spares.set(template, spare);
    return next;
  }

  async drop(name: string): Promise<void> {
    if (!this.eager) return dropDatabase(this.admin, name);
    this.pending.push(dropDatabase(this.admin, name).catch(() => {}));
  }

  /** Drops the spares and waits for deferred drops. */
  async close(): Promise<void> {
    for (const spare of this.spares.values()) {
      this.pending.push(spare.then((d) => dropDatabase(this.admin, d.name)).catch(() => {}));
    }
    this.spares.clear();
    await Promise.all(this.pending);
  }
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

const TICK_MS = 10; // USER_HZ is 100 on Linux

async function procStat(pid: number): Promise<{ ppid: number; self: number; children: number } | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name "(…)": state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return {
      ppid: Number(f[1]),
      self: (Number(f[11]) + Number(f[12])) * TICK_MS,
      children: (Number(f[13]) + Number(f[14])) * TICK_MS,
    };
  } catch {
    return undefined;
  }
}

/**
 * CPU time (ms) used so far by the whole PostgreSQL cluster: the postmaster, its live children
 * (backends, WAL writer, checkpointer, autovacuum…) and the children that already exited (counted in
 * the postmaster's cutime/cstime). Only for a server on this machine (Linux /proc); else undefined.
 * Includes other clients' work on the same server.
 */
export async function clusterCpuMs(admin: postgres.Sql): Promise<number | undefined> {
  const [row] = await admin`SELECT pg_backend_pid() AS pid`;
  const backend = await procStat(row!.pid as number);
  if (!backend) return undefined;
  const postmaster = backend.ppid;
  const main = await procStat(postmaster);
  if (!main) return undefined;
  let total = main.self + main.children;
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = await procStat(Number(name));
    if (s?.ppid === postmaster) total += s.self;
  }
  return total;
}
