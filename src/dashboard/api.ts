/**
 * What the dashboard shows, as plain JSON-ready objects: built on the driver-agnostic admin API
 * (`status`, `listFailed`, `countFailed`) plus three small queries of its own (one failed notification,
 * deleting one, and the table's cumulative insert/delete counters for throughput).
 */
import { and, eq, sql } from 'drizzle-orm';
import { type NotificationRow, status } from '../admin.ts';
import { countFailed, listFailed } from '../dead-letters.ts';
import type { AnyPgDb as CompatDb } from '../drizzle-compat.ts';
import { notificationsTable } from '../storage/notifications.ts';
import { notificationsRef } from '../storage/sql-names.ts';

/** Any Drizzle PostgreSQL database (postgres.js, node-postgres, …). */
export type AnyPgDb = CompatDb;

/** A failed notification as listed on the main page. */
export interface FailedSummary {
  id: string;
  channel: string;
  op: string | null;
  attempts: number;
  createdAt: string;
  failedAt: string | null;
  /** First line of the last error, at most 300 characters. */
  error: string;
}

/** A failed notification with everything stored about it. */
export interface FailedDetail extends Omit<FailedSummary, 'error'> {
  error: string | null;
  runAt: string;
  payload: unknown;
  old: unknown;
  new: unknown;
  context: unknown;
}

/** What `GET {basePath}/api/status` returns. */
export interface DashboardStatus {
  checkedAt: string;
  /** Whether retry and purge are enabled. */
  writes: boolean;
  channels: {
    channel: string;
    pending: number;
    scheduled: number;
    failed: number;
    oldestPendingAgeMs: number | null;
    nextRunAt: string | null;
  }[];
  totals: { pending: number; scheduled: number; failed: number };
  /**
   * Listeners connected now: their LISTEN connections (from `pg_stat_activity`) and what each
   * listener published there (`null` for older listeners): host, process id, channels, last claim.
   */
  listeners: {
    pid: number;
    applicationName: string;
    clientAddr: string | null;
    connectedAt: string;
    host: string | null;
    processId: number | null;
    channels: string[] | null;
    /** Channels left out of `channels` to keep the published statement small. */
    moreChannels: number;
    startedAt: string | null;
    /** When a claim last took work (published at most every 5 s). */
    lastClaimAt: string | null;
    handled: number | null;
  }[];
  /**
   * Cumulative rows written to and deleted from the notifications table (`pg_stat_user_tables`, so
   * approximate: updated by the statistics system within about a second, reset with the statistics).
   * Handled notifications are deleted, so the rate of `deleted` is the throughput. `null` when unknown.
   */
  counters: { inserted: number; deleted: number } | null;
  failed: { total: number; recent: FailedSummary[] };
  /**
   * Installed schedules: `lastSlot` is the latest slot fired (or skipped by `catchUp`), or when the
   * migration installed it; `nextRunAt` the first slot after it (in the past while it is due).
   */
  schedules: { name: string; cron: string; timezone: string; lastSlot: string; nextRunAt: string | null }[];
}

function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) return result as Record<string, unknown>[];
  return ((result as { rows?: unknown[] } | null)?.rows ?? []) as Record<string, unknown>[];
}

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

function summary(r: NotificationRow): FailedSummary {
  const error = (r.lastError ?? '').split('\n')[0] ?? '';
  return {
    id: String(r.id),
    channel: r.channel,
    op: r.op,
    attempts: r.attempts,
    createdAt: r.createdAt.toISOString(),
    failedAt: iso(r.failedAt),
    error: error.length > 300 ? `${error.slice(0, 299)}…` : error,
  };
}

async function counters(db: AnyPgDb, schema: string): Promise<DashboardStatus['counters']> {
  const [row] = rowsOf(
    await db.execute(
      sql`SELECT n_tup_ins::float8 AS ins, n_tup_del::float8 AS del FROM pg_stat_user_tables WHERE relid = to_regclass(${notificationsRef(schema)})`,
    ),
  );
  return row ? { inserted: Number(row.ins), deleted: Number(row.del) } : null;
}

/** Everything the main page shows. */
export async function dashboardStatus(
  db: AnyPgDb,
  options: { schema: string; writes: boolean; failedLimit: number },
): Promise<DashboardStatus> {
  const { schema } = options;
  const report = await status(db, { schema });
  const [recent, stats] = [
    await listFailed(db, { schema, limit: options.failedLimit }),
    await counters(db, schema),
  ];
  const total = recent.length < options.failedLimit ? recent.length : await countFailed(db, { schema });
  return {
    checkedAt: report.checkedAt.toISOString(),
    writes: options.writes,
    channels: report.channels.map((c) => ({ ...c, nextRunAt: iso(c.nextRunAt) })),
    totals: report.totals,
    listeners: report.listeners.map((l) => ({
      pid: l.pid,
      applicationName: l.applicationName,
      clientAddr: l.clientAddr,
      connectedAt: l.connectedAt.toISOString(),
      host: l.presence?.host ?? null,
      processId: l.presence?.pid ?? null,
      channels: l.presence?.channels ?? null,
      moreChannels: l.presence?.more ?? 0,
      startedAt: iso(l.presence?.startedAt),
      lastClaimAt: iso(l.presence?.lastClaimAt),
      handled: l.presence?.handled ?? null,
    })),
    counters: stats,
    failed: { total, recent: recent.map(summary) },
    schedules: report.schedules.map((x) => ({
      name: x.name,
      cron: x.cron,
      timezone: x.timezone,
      lastSlot: x.lastSlot.toISOString(),
      nextRunAt: iso(x.nextRunAt),
    })),
  };
}

/** Parses a notification id from a URL segment: digits only, else undefined. */
export function parseId(text: string | undefined): bigint | undefined {
  return text !== undefined && /^\d{1,19}$/.test(text) ? BigInt(text) : undefined;
}

/** One failed notification, or undefined when there is none with this id. */
export async function failedDetail(
  db: AnyPgDb,
  schema: string,
  id: bigint,
): Promise<FailedDetail | undefined> {
  const t = notificationsTable(schema);
  const [r] = await db
    .select()
    .from(t)
    .where(and(eq(t.id, id), eq(t.status, 'failed')));
  if (!r) return undefined;
  return {
    ...summary(r),
    error: r.lastError,
    runAt: r.runAt.toISOString(),
    payload: r.payload,
    old: r.old,
    new: r.new,
    context: r.context,
  };
}

/** Deletes one failed notification; resolves to whether it existed. */
export async function purgeOne(db: AnyPgDb, schema: string, id: bigint): Promise<boolean> {
  const t = notificationsTable(schema);
  const rows = await db
    .delete(t)
    .where(and(eq(t.id, id), eq(t.status, 'failed')))
    .returning({ id: t.id });
  return rows.length > 0;
}
