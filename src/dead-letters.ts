/**
 * The dead-letter part of the admin API: list, count, retry and purge failed notifications.
 *
 * @module
 */
import { and, desc, eq, inArray, lt, type SQL, sql } from 'drizzle-orm';
import {
  type AdminOptions,
  type AnyPgDb,
  guard,
  type NotificationRow,
  num,
  type RetrySelector,
} from './admin.ts';
import { PgPubSubError } from './errors.ts';
import { DEFAULT_SCHEMA, type notifications, notificationsTable } from './storage/notifications.ts';

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
        .set({
          status: 'pending',
          attempts: 0,
          runAt: sql`now()`,
          failedAt: null,
          // A keyed dead letter comes back as a successor of its key (docs/jobs.md): it never
          // collides with a pending notification that took the key meanwhile.
          dedupKey: sql`CASE WHEN "dedup_key" IS NULL THEN NULL ELSE "dedup_key" || chr(1) || gen_random_uuid()::text END`,
        })
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
