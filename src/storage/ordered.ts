import type { AnyChannel, OnDeadLetter } from '../channel.ts';
import { pendingAndDue } from './sql-names.ts';

/**
 * The SQL of ordered channels (docs/channels.md#ordered-channels): which notifications of a channel
 * may be claimed, and the two writes that keep those claims O(batch) whatever the backlog.
 *
 * **Rule.** A notification with an `ordering_key` is claimable only if no notification of the same
 * channel and key with a smaller id is still stored: pending (locked by another listener, waiting for
 * a retry's backoff, or not due) or, with `onDeadLetter: 'block'`, dead-lettered. Checked by one
 * descent of the index `(channel, ordering_key, id)`; it reads row versions, never row locks, so the
 * idle probe's brief `FOR UPDATE SKIP LOCKED` on a head does not make its successor look free.
 *
 * **Window.** A claim reads only the first `window` pending-and-due rows of the channel in claim
 * order (the claim index), so a hot key's backlog at the head of the queue cannot make one claim
 * walk all of it.
 *
 * **Parking.** Before each claim, rows of the window blocked for longer than their key's next
 * handler run (`longBlockedSql`) are *parked*: their `run_at` moves a little into the future (their
 * age, between 1 s and 5 min), out of the window, so the next claims see other keys. A window then
 * holds at most one unparked blocked row per key whose head is being handled. The transaction that removes a key's head (success, or a dead letter with `'skip'`)
 * *pulls forward* the key's next pending row (`run_at` back to `created_at`, the front of the
 * queue). Parking is a short autocommit statement that never waits (`SKIP LOCKED`) and touches only
 * row versions it read (`xmin`), so a pull-forward committed meanwhile always wins; should some path
 * remove a head without pulling (a purge of a dead letter), its successor waits at most its parking
 * delay, never forever. Parking changes when a row is next looked at, never the order: the rule above
 * is checked at every claim.
 */

/** How a channel's claims are ordered: `null` (unordered: the plain claim SQL), or its dead-letter choice. */
export type OrderMode = OnDeadLetter | null;

/** The order mode of a channel. */
export function orderModeOf(channel: AnyChannel): OrderMode {
  return channel.ordered === true ? channel.onDeadLetter : null;
}

/** Rows of claim order an ordered claim of `limit` reads at most (and parks from). */
export function orderWindow(limit: number): number {
  return limit * 2 + PROBE_WINDOW;
}

/** Rows the idle probe of an ordered channel reads at most (a prefix of every claim's window). */
export const PROBE_WINDOW = 256;

/**
 * `EXISTS`: row `alias` has an earlier notification of its key that blocks it. In `'block'` mode
 * every stored row blocks (pending or failed), so the check reads the index only.
 */
export function blockedSql(table: string, alias: string, mode: OnDeadLetter): string {
  return `EXISTS (SELECT 1 FROM ${table} AS p WHERE p."channel" = ${alias}."channel" AND p."ordering_key" = ${alias}."ordering_key" AND p."id" < ${alias}."id"${
    mode === 'skip' ? ` AND p."status" = 'pending'` : ''
  })`;
}

/**
 * `EXISTS`: row `alias` is blocked for longer than its key's next handler run, so parking it pays: two
 * or more earlier events of its key are stored, or the one before it waits (a retry's backoff, a
 * parked row) or is dead (`'block'`). The event right behind a head being handled is not parked: the
 * head's pull-forward would undo it at once.
 */
export function longBlockedSql(table: string, alias: string, mode: OnDeadLetter): string {
  const sameKey = `p."channel" = ${alias}."channel" AND p."ordering_key" = ${alias}."ordering_key" AND p."id" < ${alias}."id"`;
  const live = mode === 'skip' ? ` AND p."status" = 'pending'` : '';
  const waits = mode === 'skip' ? `p."run_at" > now()` : `(p."status" = 'failed' OR p."run_at" > now())`;
  return `(EXISTS (SELECT 1 FROM ${table} AS p WHERE ${sameKey}${live} OFFSET 1) OR EXISTS (SELECT 1 FROM ${table} AS p WHERE ${sameKey}${live} AND ${waits}))`;
}

/**
 * An array of the ids of the first `size` pending-and-due rows of a channel in claim order (the
 * claim index), locked or not. `conditions`: extra SQL on alias `w` (context filter, cursor).
 */
export function windowSql(table: string, channel: string, conditions: string, size: number): string {
  if (!Number.isSafeInteger(size) || size < 1) throw new Error(`bad order window ${size}`);
  return `ARRAY(SELECT w."id" FROM ${table} AS w WHERE w."channel" = ${channel} AND ${pendingAndDue('w')}${conditions}
    ORDER BY w."run_at", w."id" LIMIT ${size})`;
}

/**
 * Parks the blocked rows of a window (see the file comment). Autocommit; never waits on a lock;
 * an `xmin` the statement did not read (a pull-forward committed meanwhile) is left alone.
 */
export function parkSql(table: string, window: string, mode: OnDeadLetter): string {
  // Each blocked row is locked through a LATERAL subquery by its id, so the plan starts from the
  // window whatever the statistics say. (As a join, a table never analyzed since a bulk load, such as
  // a backfill's, made the planner read every pending row of the table through the claim index and
  // match the window against it: O(backlog) per claim.)
  return `WITH b AS (SELECT o."id", o."xmin" AS x FROM ${table} AS o WHERE o."id" = ANY(${window}) AND ${longBlockedSql(table, 'o', mode)}),
  l AS (SELECT k."id" FROM b CROSS JOIN LATERAL (SELECT s."id" FROM ${table} AS s
    WHERE s."id" = b."id" AND s."xmin" = b.x AND ${pendingAndDue('s')} FOR UPDATE OF s SKIP LOCKED) AS k)
UPDATE ${table} AS u SET "run_at" = now() + least(interval '5 minutes', greatest(interval '1 second', now() - u."created_at"))
FROM l WHERE u."id" = l."id"`;
}

/**
 * Planner settings for the rest of the claim transaction, sent (pipelined) right before
 * {@link pullForwardSql} when only the DELETE of the handled rows and COMMIT follow: without bitmap
 * scans, sequential scans and sorts to choose from, the pull-forward reads each head's next row
 * through the ordering index, in its order, even on statistics that describe another content of the
 * table (analyzed while empty, then a backfill loaded 100,000 rows: until autovacuum analyzes again,
 * about a minute, the planner expects a few rows and would sort a bitmap scan of the key range
 * instead, per head). The DELETE by id keeps its primary-key scan. Transaction-local: COMMIT ends it.
 */
export const PULL_FORWARD_SETTINGS = `SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)`;

/**
 * Pulls forward the next pending row of the key of each removed head (`$1`: their ids, as a bigint
 * array), in the transaction that removes them, before they are deleted. It always writes the row (a
 * new version), so a parking statement that read the old one leaves it alone.
 */
export function pullForwardSql(table: string): string {
  // A plan that holds whatever the statistics say (a table never analyzed since a bulk load, such as
  // a backfill's, or analyzed when it held other channels): per head, the subquery walks the ordering
  // index forward from the head's own entry, by a row comparison on its columns in its order, to
  // the key's first pending row, stopping at the first row of another key (LIMIT 1: one step in the
  // usual case). No other index can serve that condition or that order, and no condition names a
  // single column the claim index or the primary key could range over. (As `min(id)` over
  // `channel`/`ordering_key`/`id > head`/`status` conditions, stale estimates made the planner walk
  // the channel's pending rows, or the ids after the head, per head: O(batch × backlog), seconds per
  // claim on a 20,000-row backlog.) Each head is read by its primary key the same way.
  return `UPDATE ${table} AS s SET "run_at" = least(s."run_at", s."created_at")
FROM unnest($1::bigint[]) AS head("id")
  CROSS JOIN LATERAL (SELECT h."channel", h."ordering_key", h."id" FROM ${table} AS h WHERE h."id" = head."id" LIMIT 1) AS h
  CROSS JOIN LATERAL (SELECT x."id", x."channel", x."ordering_key" FROM ${table} AS x
    WHERE x."ordering_key" IS NOT NULL AND (x."channel", x."ordering_key", x."id") > (h."channel", h."ordering_key", h."id")
      AND (x."status" = 'pending' OR x."channel" <> h."channel" OR x."ordering_key" <> h."ordering_key")
    ORDER BY x."channel", x."ordering_key", x."id" LIMIT 1) AS f
WHERE f."channel" = h."channel" AND f."ordering_key" = h."ordering_key" AND s."id" = f."id"`;
}
