import type postgres from 'postgres';
import { errorChain } from '../errors.ts';
import { arrayLiteral } from '../identifiers.ts';
import {
  blockedSql,
  type OrderMode,
  orderWindow,
  parkSql,
  pullForwardSql,
  windowSql,
} from '../storage/ordered.ts';
import { pendingAndDue } from '../storage/sql-names.ts';
import type { ClaimCursor, Registration } from './claim-types.ts';
import { expandImageSql, isWide, populateSql, type RowDecoder } from './decode.ts';

/**
 * Savepoints one claim transaction may open before it commits and leaves the rest of its batch for
 * the next claim. PostgreSQL caches 64 subtransaction ids per backend; past that every snapshot in
 * the cluster gets slower (suboverflow), so a batch of writing handlers stays below it.
 */
export const MAX_SUBTRANSACTIONS = 60;

const META = `c."id"::text, c."op", c."context", c."attempts", (extract(epoch FROM c."created_at") * 1000)::float8, (extract(epoch FROM c."run_at") * 1000000)::bigint::text`;
export const META_COUNT = 6;
const MAX_ERROR_CHARS = 4000;
/** Hot statements are prepared: one round trip, no re-planning (clients with `prepare: false` keep theirs). */
export const PREPARED = { prepare: true } as const;

/** Which rows a claim reads: a batch size, and optionally only rows after a cursor. */
export interface ClaimWindow {
  limit: number;
  after?: ClaimCursor | null | undefined;
}

/** Default of `ListenerOptions.batchBytes`: 16 MiB of stored row images and payloads per claim. */
export const DEFAULT_BATCH_BYTES = 16 * 1024 * 1024;

/** Stored bytes of one locked row's images and payload (no detoasting: read from the datum header). */
const SIZE = `coalesce(pg_column_size(l."old"), 0) + coalesce(pg_column_size(l."new"), 0) + coalesce(pg_column_size(l."payload"), 0)`;

/**
 * The CTEs `l` (the locked batch) and `c` (its prefix within the byte budget): rows are kept while
 * the bytes of the rows before them stay under `bytes`, so the first row is always kept and a claim
 * loads at most `bytes` plus one row. (A window function cannot sit beside FOR UPDATE in one SELECT; the window's sort of at most a
 * batch of rows also gives the claim its order: measured ~1 µs per row, docs/guarantees.md.)
 * Locked rows past the budget stay locked, untouched, until the claim commits; other listeners skip
 * them meanwhile, and the next claim takes them.
 */
function budgeted(locked: string, bytes: number | undefined, limit: number): string {
  const budget = bytes ?? DEFAULT_BATCH_BYTES;
  if (!Number.isSafeInteger(budget) || budget < 1) throw new Error(`bad claim byte budget ${budget}`);
  const order = `ORDER BY ${claimOrder('l')} ROWS UNBOUNDED PRECEDING`;
  return `l AS (${locked}), c AS (SELECT * FROM (SELECT l.*, sum(${SIZE}) OVER (${order}) - (${SIZE}) AS "pgpubsub_before", row_number() OVER (${order}) AS "pgpubsub_n" FROM l) AS s WHERE s."pgpubsub_before" < ${budget} AND s."pgpubsub_n" <= ${limit})`;
}

/**
 * The order a claim hands rows to handlers: the priority lane (highest priority first), then the
 * FIFO lane, each by (run_at, id). `alias` is `l` or `c` (rows carry `pgpubsub_lane`/`pgpubsub_rank`).
 */
export function claimOrder(alias: string): string {
  return `${alias}."pgpubsub_lane", ${alias}."pgpubsub_rank" DESC, ${alias}."run_at", ${alias}."id"`;
}

/**
 * Slots of a claim of `limit` rows that the priority lane may take: all but a quarter, which the
 * FIFO lane (oldest due rows, whatever their priority) always gets, so a steady stream of
 * prioritised work cannot starve the rest (docs/jobs.md). Batches under 4 have no FIFO share.
 */
export function priorityShare(limit: number): number {
  return limit >= 4 ? limit - Math.floor(limit / 4) : limit;
}

/** The context filter and cursor conditions of a claim on alias `w` (ordered claims' window). */
function windowConditions(filter: boolean, window: ClaimWindow): string {
  const cursorParam = filter ? 3 : 2;
  return `${filter ? ` AND w."context" @> $2::text::jsonb` : ''}${
    window.after
      ? ` AND (w."run_at", w."id") > (timestamptz 'epoch' + $${cursorParam}::bigint * interval '1 microsecond', $${cursorParam + 1}::bigint)`
      : ''
  }`;
}

/**
 * The statement an ordered claim runs first, in its own (autocommit) transaction: parks the blocked
 * rows of the claim's window (runtime/ordered-sql.ts). Same parameters as the claim.
 */
export function orderedParkSql(
  table: string,
  filter: boolean,
  window: ClaimWindow,
  mode: 'block' | 'skip',
): string {
  return parkSql(
    table,
    windowSql(table, '$1', windowConditions(filter, window), orderWindow(window.limit)),
    mode,
  );
}

/**
 * An ordered channel's claim: the heads of their keys (no earlier notification of the key is
 * stored) among the first rows of claim order (the window), so it stays O(batch) whatever the
 * backlog. The outer conditions repeat the window's so that a row changed meanwhile is re-checked.
 */
function orderedSelect(
  table: string,
  filter: boolean,
  columns: string,
  window: ClaimWindow,
  mode: 'block' | 'skip',
): string {
  const ids = windowSql(table, '$1', windowConditions(filter, window), orderWindow(window.limit));
  // One lane (ordered channels take no priorities): the lane columns budgeted() orders by.
  return `SELECT ${columns}, 1 AS "pgpubsub_lane", 0 AS "pgpubsub_rank" FROM ${table} AS o
  WHERE o."id" = ANY(${ids}) AND o."channel" = $1 AND ${pendingAndDue('o')} AND NOT ${blockedSql(table, 'o', mode)}
  ORDER BY o."run_at", o."id" LIMIT ${window.limit} FOR UPDATE OF o SKIP LOCKED`;
}

function lockedSelect(
  table: string,
  filter: boolean,
  columns: string,
  window: ClaimWindow,
  mode: OrderMode = null,
): string {
  if (!Number.isSafeInteger(window.limit) || window.limit < 1)
    throw new Error(`bad claim limit ${window.limit}`);
  if (mode !== null) return orderedSelect(table, filter, columns, window, mode);
  const cursorParam = filter ? 3 : 2;
  const context = filter ? ` AND "context" @> $2::text::jsonb` : '';
  // Two lanes, each O(batch) on its index and skipping rows other listeners hold (never waiting):
  // `p` reads notifications_priority_idx (only rows with priority > 0: empty, one index probe, for
  // channels that never use priorities), `f` reads the claim index in (run_at, id) order, as before
  // priorities existed. `f` leaves out `p`'s rows before locking. Rows `f` locks past the batch stay
  // locked, untouched, until the claim commits (like rows past the byte budget). A claim started
  // while others of this process are in flight begins `f` after their rows (the cursor) instead of
  // walking past them. The limits are literals so that a generic plan knows them.
  const p = `SELECT ${columns}, 0 AS "pgpubsub_lane", "priority" AS "pgpubsub_rank" FROM ${table}
  WHERE "channel" = $1 AND "status" = 'pending' AND "priority" > 0 AND "run_at" <= now()${context}
  ORDER BY "priority" DESC, "run_at", "id" LIMIT ${priorityShare(window.limit)} FOR UPDATE SKIP LOCKED`;
  const f = `SELECT ${columns}, 1 AS "pgpubsub_lane", 0 AS "pgpubsub_rank" FROM ${table}
  WHERE "channel" = $1 AND ${pendingAndDue()}${context}${
    window.after
      ? ` AND ("run_at", "id") > (timestamptz 'epoch' + $${cursorParam}::bigint * interval '1 microsecond', $${cursorParam + 1}::bigint)`
      : ''
  } AND "id" NOT IN (SELECT p."id" FROM p)
  ORDER BY "run_at", "id" LIMIT ${window.limit} FOR UPDATE SKIP LOCKED`;
  return `WITH p AS MATERIALIZED (${p}), f AS MATERIALIZED (${f}) SELECT * FROM p UNION ALL SELECT * FROM f`;
}

const CLAIM_COLUMNS = `"id", "op", "old", "new", "payload", "context", "attempts", "created_at", "run_at"`;

/** SQL that claims and, for trigger channels, decodes a batch in one round trip. */
export function claimSql(
  reg: Registration,
  table: string,
  filter: boolean,
  window: ClaimWindow,
  bytes?: number,
  mode: OrderMode = null,
): string {
  const locked = lockedSelect(table, filter, CLAIM_COLUMNS, window, mode);
  const ctes = budgeted(locked, bytes, window.limit);
  if (!reg.decoder) {
    return `WITH ${ctes} SELECT ${META}, c."payload" FROM c ORDER BY ${claimOrder('c')}`;
  }
  const d = reg.decoder;
  if (isWide(d, META_COUNT)) {
    // Old and new side by side would pass the SELECT list limit: one output row per side instead
    // (side 0 old, 1 new), merged back by the caller (mergeSides).
    return `WITH ${ctes}
SELECT ${META}, s.side, s.img IS NOT NULL, ${expandImageSql(d, 'r')}
FROM c CROSS JOIN LATERAL (VALUES (0, c."old"), (1, c."new")) AS s(side, img) ${populateSql(d, 's.img', 'r')}
ORDER BY ${claimOrder('c')}, s.side`;
  }
  return `WITH ${ctes}
SELECT ${META}, c."old" IS NOT NULL, ${expandImageSql(d, 'o')}, c."new" IS NOT NULL, ${expandImageSql(d, 'n')}
FROM c ${populateSql(d, 'c."old"', 'o')} ${populateSql(d, 'c."new"', 'n')}
ORDER BY ${claimOrder('c')}`;
}

/**
 * Rows of a wide claim (two per notification: `prefix` columns, the side, then the side's image)
 * back into one row per notification: `prefix` columns, then old and new as a narrow claim has them.
 */
export function mergeSides(rows: unknown[][], prefix: number): unknown[][] {
  const out: unknown[][] = [];
  for (let i = 0; i + 1 < rows.length; i += 2) {
    const old = rows[i]!;
    out.push([...old.slice(0, prefix), ...old.slice(prefix + 1), ...rows[i + 1]!.slice(prefix + 1)]);
  }
  return out;
}

/** SQL that claims raw (undecoded) rows: the fallback when a batch holds an image that cannot decode. */
export function rawClaimSql(
  table: string,
  filter: boolean,
  window: ClaimWindow,
  bytes?: number,
  mode: OrderMode = null,
): string {
  const locked = lockedSelect(table, filter, CLAIM_COLUMNS, window, mode);
  return `WITH ${budgeted(locked, bytes, window.limit)} SELECT ${META}, c."old"::text, c."new"::text FROM c ORDER BY ${claimOrder('c')}`;
}

/** SQL that decodes one notification's images ($1 old, $2 new): two rows, merged by mergeSides. */
export function decodeOneSql(d: RowDecoder): string {
  return `SELECT s.side, s.img IS NOT NULL, ${expandImageSql(d, 'r')}
FROM (VALUES (0, $1::text::jsonb), (1, $2::text::jsonb)) AS s(side, img) ${populateSql(d, 's.img', 'r')}
ORDER BY s.side`;
}

/**
 * Text kept in `last_error`: the message, the messages of its causes, and the stack, bounded. It is
 * always storable (issue 14, minor items): NUL characters and unpaired surrogates, which PostgreSQL
 * refuses, become U+FFFD, and the cut falls on a code point boundary; a thrown non-Error is named.
 */
export function describeError(error: unknown): string {
  const chain = [...errorChain(error, 4)];
  const parts = chain.map((e, depth) => {
    const text = e instanceof Error ? `${e.name}: ${e.message}` : depth === 0 ? thrownValue(e) : String(e);
    return depth === 0 ? text : `caused by ${text}`;
  });
  if (parts.length === 0) parts.push(thrownValue(error));
  const stack =
    error instanceof Error && error.stack ? `\n${error.stack.split('\n').slice(1).join('\n')}` : '';
  let text = (parts.join('\n') + stack).replaceAll('\0', '\uFFFD');
  if (text.length > MAX_ERROR_CHARS) {
    // Do not cut a surrogate pair in two.
    const end = /[\uD800-\uDBFF]/.test(text.charAt(MAX_ERROR_CHARS - 1))
      ? MAX_ERROR_CHARS - 1
      : MAX_ERROR_CHARS;
    text = `${text.slice(0, end)}…`;
  }
  return text.toWellFormed();
}

/** Names a thrown value that is not an Error: `handler threw undefined`, `handler threw "text"`. */
function thrownValue(value: unknown): string {
  let shown: string;
  try {
    shown = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    shown = String(value);
  }
  return `handler threw ${value === undefined ? 'undefined' : shown}`;
}

/** Records failed attempts (retry later, or dead letter) in the claim transaction. */
export async function recordFailures(
  sql: postgres.Sql | postgres.ReservedSql,
  table: string,
  failures: { id: string; error: unknown; delayMs: number; dead: boolean }[],
  mode: OrderMode = null,
): Promise<void> {
  if (failures.length === 0) return;
  // Ordered channel, `onDeadLetter: 'skip'`: a dead letter frees its key; its next event moves up.
  const freed = mode === 'skip' ? failures.filter((f) => f.dead).map((f) => f.id) : [];
  if (freed.length) await sql.unsafe(pullForwardSql(table), [arrayLiteral(freed)], PREPARED);
  const rows = failures.map((f) => ({
    id: f.id,
    error: describeError(f.error),
    delay_ms: f.delayMs,
    dead: f.dead,
  }));
  await sql.unsafe(
    `UPDATE ${table} AS n SET "attempts" = n."attempts" + 1, "last_error" = f.error,
  "status" = CASE WHEN f.dead THEN 'failed' ELSE 'pending' END,
  "failed_at" = CASE WHEN f.dead THEN clock_timestamp() END,
  "run_at" = CASE WHEN f.dead THEN n."run_at" ELSE clock_timestamp() + f.delay_ms * interval '1 millisecond' END
FROM jsonb_to_recordset($1::text::jsonb) AS f(id bigint, error text, delay_ms float8, dead boolean)
WHERE n."id" = f.id`,
    [JSON.stringify(rows)],
    PREPARED,
  );
}
