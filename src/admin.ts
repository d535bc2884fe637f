import { and, desc, eq, inArray, lt, type SQL, sql } from 'drizzle-orm';
import type { PgDatabase } from 'drizzle-orm/pg-core';
import { PgPubSubError } from './errors.ts';
import { isUndefinedTable, tableMissing } from './storage/missing-table.ts';
import { DEFAULT_SCHEMA, type notifications, notificationsTable } from './storage/notifications.ts';
import { notificationsRef, pendingAndDue, pendingScheduled, wakeupsRef } from './storage/sql-names.ts';

/** Any Drizzle PostgreSQL database (postgres.js, node-postgres, …). */
type AnyPgDb = PgDatabase<any, any, any>;

/** Options shared by the admin functions. */
export interface AdminOptions {
  /** pg schema of the notifications table. Default `pgpubsub`. */
  schema?: string;
}

/** Counts of one channel, as reported by {@link status}. */
export interface ChannelStatus {
  channel: string;
  /** Pending notifications that are due now (waiting for, or being handled by, a listener). */
  pending: number;
  /** Pending notifications whose `run_at` is in the future (retries waiting for their backoff). */
  scheduled: number;
  /** Dead letters (`status = 'failed'`), kept until retried or purged. */
  failed: number;
  /**
   * How long the oldest due notification has been waiting, in ms: since it was written (first
   * attempt) or since its retry became due. `null` when nothing is due.
   */
  oldestPendingAgeMs: number | null;
  /** When the next scheduled retry is due, or `null`. */
  nextRunAt: Date | null;
}

/** A connection that is LISTENing: one per running listener process. */
export interface ListenerConnection {
  /** Backend pid on the server. */
  pid: number;
  /** `application_name`: the CLI sets `drizzle-pgpubsub listen` / `drizzle-pgpubsub worker N`. */
  applicationName: string;
  /** Client address, `null` for a unix socket. */
  clientAddr: string | null;
  /** When the connection was opened. */
  connectedAt: Date;
}

/** What {@link status} reports. */
export interface StatusReport {
  channels: ChannelStatus[];
  totals: { pending: number; scheduled: number; failed: number };
  /** Connections of this database whose last statement is `LISTEN` (listeners connected now). */
  listeners: ListenerConnection[];
  checkedAt: Date;
}

/** Which failed notifications {@link retryFailed} re-queues. */
export type RetrySelector =
  | { ids: readonly (string | number | bigint)[] }
  | { channel: string }
  | { all: true };

/** A row of the notifications table, as Drizzle returns it. */
export type NotificationRow = typeof notifications.$inferSelect;

function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) return result as Record<string, unknown>[];
  return ((result as { rows?: unknown[] } | null)?.rows ?? []) as Record<string, unknown>[];
}

async function guard<T>(schema: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (isUndefinedTable(error)) throw tableMissing(schema, error);
    throw error;
  }
}

const num = (value: unknown): number => (value === null || value === undefined ? 0 : Number(value));

/**
 * Per channel: due (`pending`), `scheduled` (retries in the future) and `failed` counts and the age of
 * the oldest due notification; plus the listeners connected now (connections whose last statement is
 * `LISTEN`; other roles' connections are visible only to superusers and `pg_read_all_stats`).
 * Channels any listener has gone idle on are listed even when empty.
 *
 * @example
 * const report = await status(db);
 * for (const c of report.channels) console.log(c.channel, c.pending, c.failed);
 */
export async function status(db: AnyPgDb, options: AdminOptions = {}): Promise<StatusReport> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const [exists] = rowsOf(
    await db.execute(
      sql`SELECT to_regclass(${notificationsRef(schema)}) IS NOT NULL AS ok, to_regclass(${wakeupsRef(schema)}) IS NOT NULL AS wakeups`,
    ),
  );
  if (!exists?.ok) throw tableMissing(schema);
  const known = exists.wakeups ? sql.raw(`UNION SELECT "channel" FROM ${wakeupsRef(schema)}`) : sql``;
  const counts = rowsOf(
    await db.execute(sql`
WITH counts AS (
  SELECT "channel",
    count(*) FILTER (WHERE ${sql.raw(pendingAndDue())})::int AS pending,
    count(*) FILTER (WHERE ${sql.raw(pendingScheduled())})::int AS scheduled,
    count(*) FILTER (WHERE "status" = 'failed')::int AS failed,
    (extract(epoch FROM now() - min("run_at") FILTER (WHERE ${sql.raw(pendingAndDue())})) * 1000)::float8 AS oldest_ms,
    (extract(epoch FROM min("run_at") FILTER (WHERE ${sql.raw(pendingScheduled())})) * 1000)::float8 AS next_ms
  FROM ${sql.raw(notificationsRef(schema))} GROUP BY "channel"
), names AS (SELECT "channel" FROM counts ${known})
SELECT n."channel", coalesce(c.pending, 0) AS pending, coalesce(c.scheduled, 0) AS scheduled,
  coalesce(c.failed, 0) AS failed, c.oldest_ms, c.next_ms
FROM names n LEFT JOIN counts c USING ("channel") ORDER BY n."channel"`),
  );
  const listeners = rowsOf(
    await db.execute(sql`
SELECT pid, coalesce(application_name, '') AS app, client_addr::text AS addr,
  (extract(epoch FROM backend_start) * 1000)::float8 AS started
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'listen %'
ORDER BY backend_start, pid`),
  );
  const channels: ChannelStatus[] = counts.map((r) => ({
    channel: String(r.channel),
    pending: num(r.pending),
    scheduled: num(r.scheduled),
    failed: num(r.failed),
    oldestPendingAgeMs:
      r.oldest_ms === null || r.oldest_ms === undefined ? null : Math.max(0, num(r.oldest_ms)),
    nextRunAt: r.next_ms === null || r.next_ms === undefined ? null : new Date(num(r.next_ms)),
  }));
  const totals = { pending: 0, scheduled: 0, failed: 0 };
  for (const c of channels) {
    totals.pending += c.pending;
    totals.scheduled += c.scheduled;
    totals.failed += c.failed;
  }
  return {
    channels,
    totals,
    listeners: listeners.map((r) => ({
      pid: num(r.pid),
      applicationName: String(r.app),
      clientAddr: r.addr === null || r.addr === undefined ? null : String(r.addr),
      connectedAt: new Date(num(r.started)),
    })),
    checkedAt: new Date(),
  };
}

/** Thresholds of {@link healthProblems}. */
export interface HealthOptions {
  /** Oldest due notification may wait at most this long (ms). Default 5 minutes. */
  maxAgeMs?: number;
  /** Failed notifications tolerated. Default 0. */
  maxFailed?: number;
}

/**
 * What is wrong according to a {@link status} report: dead letters, or due work older than
 * `maxAgeMs` (no listener running, or listeners not keeping up). Empty when healthy. Use it in your
 * own health endpoint, or run `drizzle-pgpubsub status --check`.
 */
export function healthProblems(report: StatusReport, options: HealthOptions = {}): string[] {
  const { maxAgeMs = 5 * 60_000, maxFailed = 0 } = options;
  const problems: string[] = [];
  if (report.totals.failed > maxFailed) {
    const where = report.channels
      .filter((c) => c.failed > 0)
      .map((c) => `${c.channel}: ${c.failed}`)
      .join(', ');
    problems.push(
      `${report.totals.failed} failed notification${report.totals.failed === 1 ? '' : 's'} (${where}); inspect with \`drizzle-pgpubsub failed\`, then \`retry\` or \`purge\``,
    );
  }
  for (const c of report.channels) {
    if (c.oldestPendingAgeMs !== null && c.oldestPendingAgeMs > maxAgeMs) {
      problems.push(
        `${c.channel}: oldest pending notification has waited ${Math.round(c.oldestPendingAgeMs / 1000)}s (limit ${Math.round(maxAgeMs / 1000)}s) with ${c.pending} pending; ${report.listeners.length === 0 ? 'no listener is connected' : 'listeners are not keeping up'}`,
      );
    }
  }
  return problems;
}

/**
 * Failed notifications (dead letters), most recently failed first, with their `lastError`.
 *
 * @example
 * for (const n of await listFailed(db, { channel: 'email_requested' })) console.log(n.id, n.lastError);
 */
export async function listFailed(
  db: AnyPgDb,
  options: AdminOptions & { channel?: string; limit?: number } = {},
): Promise<NotificationRow[]> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const limit = options.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `listFailed: \`limit\` must be a positive integer, got ${limit}.`,
    );
  }
  const t = notificationsTable(schema);
  const where: SQL[] = [eq(t.status, 'failed')];
  if (options.channel !== undefined) where.push(eq(t.channel, options.channel));
  return guard(schema, () =>
    db
      .select()
      .from(t)
      .where(and(...where))
      .orderBy(desc(t.failedAt), desc(t.id))
      .limit(limit),
  );
}

/** Counts failed notifications, optionally of one channel. */
export async function countFailed(
  db: AnyPgDb,
  options: AdminOptions & { channel?: string } = {},
): Promise<number> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const t = notificationsTable(schema);
  const where: SQL[] = [eq(t.status, 'failed')];
  if (options.channel !== undefined) where.push(eq(t.channel, options.channel));
  const [row] = await guard(schema, () =>
    db
      .select({ n: sql<number>`count(*)::int` })
      .from(t)
      .where(and(...where)),
  );
  return num(row?.n);
}

function parseIds(ids: readonly (string | number | bigint)[]): bigint[] {
  return ids.map((id) => {
    const text = String(id).trim();
    if (!/^\d+$/.test(text)) {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `retryFailed: ids must be positive integers, got ${JSON.stringify(String(id))}.`,
      );
    }
    return BigInt(text);
  });
}

function selectorCondition(t: typeof notifications, selector: RetrySelector): SQL | undefined {
  const s = selector as { ids?: unknown; channel?: unknown; all?: unknown };
  const given = ['ids', 'channel', 'all'].filter((k) => (s as Record<string, unknown>)[k] !== undefined);
  if (given.length !== 1 || (s.all !== undefined && s.all !== true)) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      'retryFailed: pass exactly one of { ids: [...] }, { channel: "name" } or { all: true }.',
    );
  }
  if (s.ids !== undefined) {
    if (!Array.isArray(s.ids))
      throw new PgPubSubError('INVALID_OPTIONS', 'retryFailed: `ids` must be an array.');
    const ids = parseIds(s.ids);
    return ids.length === 0 ? undefined : inArray(t.id, ids);
  }
  if (s.channel !== undefined) {
    if (typeof s.channel !== 'string' || s.channel === '') {
      throw new PgPubSubError('INVALID_OPTIONS', 'retryFailed: `channel` must be a channel name.');
    }
    return eq(t.channel, s.channel);
  }
  return sql`true`;
}

/**
 * Like {@link retryFailed}, with the count per channel.
 * @internal used by the CLI
 */
export async function retryFailedByChannel(
  db: AnyPgDb,
  selector: RetrySelector,
  options: AdminOptions = {},
): Promise<Record<string, number>> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const t = notificationsTable(schema);
  const condition = selectorCondition(t, selector);
  if (condition === undefined) return {};
  return guard(schema, () =>
    db.transaction(async (tx) => {
      const rows = await tx
        .update(t)
        .set({ status: 'pending', attempts: 0, runAt: sql`now()`, failedAt: null })
        .where(and(eq(t.status, 'failed'), condition))
        .returning({ channel: t.channel });
      const byChannel: Record<string, number> = {};
      for (const { channel } of rows) byChannel[channel] = (byChannel[channel] ?? 0) + 1;
      // Delivered at commit: wakes listeners that sleep on these channels.
      for (const channel of Object.keys(byChannel).sort())
        await tx.execute(sql`SELECT pg_notify(${channel}, '')`);
      return byChannel;
    }),
  );
}

/**
 * Re-queues failed notifications (dead letters): back to `pending` with `attempts` reset and due
 * now, then NOTIFYs their channels so running listeners pick them up at once. `last_error` is kept
 * until the next attempt. Returns how many were re-queued.
 *
 * @example
 * await retryFailed(db, { channel: 'email_requested' });
 * await retryFailed(db, { ids: ['42', '43'] });
 * await retryFailed(db, { all: true });
 */
export async function retryFailed(
  db: AnyPgDb,
  selector: RetrySelector,
  options: AdminOptions = {},
): Promise<number> {
  const byChannel = await retryFailedByChannel(db, selector, options);
  return Object.values(byChannel).reduce((a, b) => a + b, 0);
}

/**
 * Deletes failed notifications (dead letters) that failed more than `olderThan` ms ago (`0`: all),
 * optionally of one channel. Returns how many were deleted.
 *
 * @example
 * await purgeFailed(db, { olderThan: 7 * 24 * 3600_000 });
 */
export async function purgeFailed(
  db: AnyPgDb,
  options: AdminOptions & { olderThan: number; channel?: string },
): Promise<number> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const { olderThan } = options;
  if (typeof olderThan !== 'number' || !Number.isFinite(olderThan) || olderThan < 0) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `purgeFailed: \`olderThan\` must be a number of milliseconds ≥ 0, got ${String(olderThan)}.`,
    );
  }
  const t = notificationsTable(schema);
  const where: SQL[] = [
    eq(t.status, 'failed'),
    lt(t.failedAt, sql`now() - ${Math.round(olderThan)}::float8 * interval '1 millisecond'`),
  ];
  if (olderThan === 0) where.pop();
  if (options.channel !== undefined) where.push(eq(t.channel, options.channel));
  const rows = await guard(schema, () =>
    db
      .delete(t)
      .where(and(...where))
      .returning({ id: t.id }),
  );
  return rows.length;
}
