/**
 * The admin API, driver-free (it takes any Drizzle PostgreSQL database): {@link status} and
 * {@link healthProblems} here, the dead-letter functions in `./dead-letters.ts`.
 *
 * @module
 */
import { sql } from 'drizzle-orm';
import type { AnyPgDb as CompatDb } from './drizzle-compat.ts';
import { nextSlot } from './schedule-slots.ts';
import { isUndefinedTable, tableMissing } from './storage/missing-table.ts';
import { DEFAULT_SCHEMA, type notifications } from './storage/notifications.ts';
import {
  LISTEN_SESSION_MARK,
  notificationsRef,
  packedRef,
  parsePresence,
  pendingAndDue,
  pendingScheduled,
  schedulesRef,
  wakeupsRef,
} from './storage/sql-names.ts';

/** Any Drizzle PostgreSQL database (postgres.js, node-postgres, …). */
export type AnyPgDb = CompatDb;

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
  /** Pending notifications whose `run_at` is in the future (delayed jobs, retries waiting for their backoff). */
  scheduled: number;
  /** Due pending notifications with a priority above 0 (claimed ahead of the rest: docs/jobs.md). */
  prioritized: number;
  /** Pending notifications with a dedup key (`notify(…, { key })`). */
  keyed: number;
  /** Dead letters (`status = 'failed'`), kept until retried or purged. */
  failed: number;
  /**
   * How long the oldest due notification has been waiting, in ms: since it was written (first
   * attempt) or since its retry became due. `null` when nothing is due.
   */
  oldestPendingAgeMs: number | null;
  /** When the next scheduled notification (delayed job or retry) is due, or `null`. */
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
  /**
   * What the listener published on its LISTEN session (drizzle-pgpubsub 0.x with presence; `null`
   * for older listeners, a `track_activity_query_size` too small, or a plain `LISTEN` connection).
   */
  presence: {
    /** Host name of the listener's machine. */
    host: string;
    /** Process id of the listener on its host. */
    pid: number;
    /** Channels it handles (`more`: how many were left out to keep the statement small). */
    channels: string[];
    more: number;
    startedAt: Date;
    /** When a claim last took work (published at most every 5 s); `null`: none yet. */
    lastClaimAt: Date | null;
    /** Notifications handled as of `lastClaimAt`. */
    handled: number;
  } | null;
}

/** A schedule installed by a migration, as reported by {@link status}. */
export interface ScheduleStatus {
  name: string;
  cron: string;
  timezone: string;
  /** The latest slot fired or skipped (the exactly-once fence); at first, when the migration ran. */
  lastSlot: Date;
  /** The first slot after `lastSlot`: in the past while a listener is due to fire it. `null`: never. */
  nextRunAt: Date | null;
}

/** What {@link status} reports. */
export interface StatusReport {
  channels: ChannelStatus[];
  /** Installed schedules and their next run. */
  schedules: ScheduleStatus[];
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

/** The rows of a `db.execute()` result, whichever driver ran it. */
export function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) return result as Record<string, unknown>[];
  return ((result as { rows?: unknown[] } | null)?.rows ?? []) as Record<string, unknown>[];
}

/** Runs an admin query; PostgreSQL's `undefined_table` becomes the one TABLE_MISSING error. */
export async function guard<T>(schema: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (isUndefinedTable(error)) throw tableMissing(schema, error);
    throw error;
  }
}

/** A count from a row (null: 0). */
export const num = (value: unknown): number => (value === null || value === undefined ? 0 : Number(value));

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
      sql`SELECT to_regclass(${notificationsRef(schema)}) IS NOT NULL AS ok, to_regclass(${wakeupsRef(schema)}) IS NOT NULL AS wakeups, to_regclass(${schedulesRef(schema)}) IS NOT NULL AS schedules, to_regclass(${packedRef(schema)}) IS NOT NULL AS packed`,
    ),
  );
  if (!exists?.ok) throw tableMissing(schema);
  const known = exists.wakeups ? sql.raw(`UNION SELECT "channel" FROM ${wakeupsRef(schema)}`) : sql``;
  // Packed rows (storage version 5) count as pending, due since their statement: `count` events each.
  const packed = exists.packed
    ? sql.raw(`SELECT "channel", sum("count")::int AS pending, 0 AS scheduled, 0 AS failed, 0 AS prioritized, 0 AS keyed,
    (extract(epoch FROM now() - min("created_at")) * 1000)::float8 AS oldest_ms, NULL::float8 AS next_ms
  FROM ${packedRef(schema)} GROUP BY "channel"`)
    : sql.raw(
        `SELECT NULL::text AS "channel", 0 AS pending, 0 AS scheduled, 0 AS failed, 0 AS prioritized, 0 AS keyed, NULL::float8 AS oldest_ms, NULL::float8 AS next_ms WHERE false`,
      );
  const counts = rowsOf(
    await db.execute(sql`
WITH rows AS (
  SELECT "channel",
    count(*) FILTER (WHERE ${sql.raw(pendingAndDue())})::int AS pending,
    count(*) FILTER (WHERE ${sql.raw(pendingScheduled())})::int AS scheduled,
    count(*) FILTER (WHERE "status" = 'failed')::int AS failed,
    count(*) FILTER (WHERE ${sql.raw(pendingAndDue())} AND "priority" > 0)::int AS prioritized,
    count(*) FILTER (WHERE "status" = 'pending' AND "dedup_key" IS NOT NULL)::int AS keyed,
    (extract(epoch FROM now() - min("run_at") FILTER (WHERE ${sql.raw(pendingAndDue())})) * 1000)::float8 AS oldest_ms,
    (extract(epoch FROM min("run_at") FILTER (WHERE ${sql.raw(pendingScheduled())})) * 1000)::float8 AS next_ms
  FROM ${sql.raw(notificationsRef(schema))} GROUP BY "channel"
  UNION ALL ${packed}
), counts AS (
  SELECT "channel", sum(pending)::int AS pending, sum(scheduled)::int AS scheduled, sum(failed)::int AS failed,
    sum(prioritized)::int AS prioritized, sum(keyed)::int AS keyed, max(oldest_ms) AS oldest_ms, min(next_ms) AS next_ms
  FROM rows GROUP BY "channel"
), names AS (SELECT "channel" FROM counts ${known})
SELECT n."channel", coalesce(c.pending, 0) AS pending, coalesce(c.scheduled, 0) AS scheduled,
  coalesce(c.failed, 0) AS failed, coalesce(c.prioritized, 0) AS prioritized, coalesce(c.keyed, 0) AS keyed,
  c.oldest_ms, c.next_ms
FROM names n LEFT JOIN counts c USING ("channel") ORDER BY n."channel"`),
  );
  const listeners = rowsOf(
    await db.execute(sql`
SELECT pid, coalesce(application_name, '') AS app, client_addr::text AS addr,
  (extract(epoch FROM backend_start) * 1000)::float8 AS started, query
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND (query ILIKE 'listen %' OR starts_with(query, ${LISTEN_SESSION_MARK}))
ORDER BY backend_start, pid`),
  );
  const channels: ChannelStatus[] = counts.map((r) => ({
    channel: String(r.channel),
    pending: num(r.pending),
    scheduled: num(r.scheduled),
    failed: num(r.failed),
    prioritized: num(r.prioritized),
    keyed: num(r.keyed),
    oldestPendingAgeMs:
      r.oldest_ms === null || r.oldest_ms === undefined ? null : Math.max(0, num(r.oldest_ms)),
    nextRunAt: r.next_ms === null || r.next_ms === undefined ? null : new Date(num(r.next_ms)),
  }));
  const scheduleRows = exists.schedules
    ? rowsOf(
        await db.execute(sql`
SELECT "name", "cron", "timezone", (extract(epoch FROM "last_slot") * 1000)::float8 AS last_ms
FROM ${sql.raw(schedulesRef(schema))} ORDER BY "name"`),
      )
    : [];
  const schedules = scheduleRows.map((r): ScheduleStatus => {
    const entry = { cron: String(r.cron), timezone: String(r.timezone), catchUp: 1 };
    const lastSlot = new Date(Math.floor(num(r.last_ms)));
    let nextRunAt: Date | null = null;
    try {
      nextRunAt = nextSlot(entry, lastSlot);
    } catch {
      // An expression this version cannot read: shown without a next run.
    }
    return { name: String(r.name), cron: entry.cron, timezone: entry.timezone, lastSlot, nextRunAt };
  });
  const totals = { pending: 0, scheduled: 0, failed: 0 };
  for (const c of channels) {
    totals.pending += c.pending;
    totals.scheduled += c.scheduled;
    totals.failed += c.failed;
  }
  return {
    channels,
    schedules,
    totals,
    listeners: listeners.map((r): ListenerConnection => {
      const p = typeof r.query === 'string' ? parsePresence(r.query) : undefined;
      return {
        pid: num(r.pid),
        applicationName: String(r.app),
        clientAddr: r.addr === null || r.addr === undefined ? null : String(r.addr),
        connectedAt: new Date(num(r.started)),
        presence: p
          ? {
              host: p.host,
              pid: p.pid,
              channels: p.channels,
              more: p.more ?? 0,
              startedAt: new Date(p.startedAt),
              lastClaimAt: p.lastClaimAt === null ? null : new Date(p.lastClaimAt),
              handled: p.handled,
            }
          : null,
      };
    }),
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
