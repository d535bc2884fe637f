import type postgres from 'postgres';
import type { OtelBatchResult, OtelMeter } from './otel-api.ts';

/** One started listener's share of the backlog gauges: its client, table and channels. */
export interface BacklogSource {
  sql: postgres.Sql;
  table: string;
  channels: string[];
  /** The packed table of the same schema (storage version 5): its events count as pending. */
  packed?: string | undefined;
}

interface GaugeState {
  sources: Set<BacklogSource>;
}

const states = new WeakMap<OtelMeter, GaugeState>();

/**
 * Pending notifications (all, delayed ones included) and how long the oldest due one has waited
 * (seconds since its `run_at`, 0 when none is due), per channel of the given ones: one indexed query.
 */
const BACKLOG_SQL = (table: string, packed: string | undefined) => {
  const rows = `SELECT "channel", count(*)::int AS "pending",
  coalesce(extract(epoch FROM now() - min("run_at") FILTER (WHERE "run_at" <= now())), 0)::float8 AS "age"
FROM ${table} WHERE "status" = 'pending' AND "channel" = ANY($1::text[]) GROUP BY "channel"`;
  if (!packed) return rows;
  return `SELECT "channel", sum("pending")::int AS "pending", max("age") AS "age" FROM (${rows}
UNION ALL SELECT "channel", sum("count")::int, extract(epoch FROM now() - min("created_at"))::float8
FROM ${packed} WHERE "channel" = ANY($1::text[]) GROUP BY "channel") AS b GROUP BY "channel"`;
};

/**
 * Adds `source` to the meter's backlog gauges (`pgpubsub.backlog`, `pgpubsub.oldest_pending_age`),
 * creating them on first use. Every collection runs one query per storage table for all the
 * process's listeners together, not one per listener. Returns a function that removes the source.
 */
export function observeBacklog(meter: OtelMeter, source: BacklogSource): () => void {
  let state = states.get(meter);
  if (!state) {
    const created: GaugeState = { sources: new Set() };
    state = created;
    states.set(meter, created);
    const backlog = meter.createObservableGauge('pgpubsub.backlog', {
      description: 'Pending notifications per channel (delayed ones included).',
      unit: '{message}',
    });
    const age = meter.createObservableGauge('pgpubsub.oldest_pending_age', {
      description: 'How long the oldest due pending notification has waited (since its run_at).',
      unit: 's',
    });
    meter.addBatchObservableCallback((result) => collect(created, result, backlog, age), [backlog, age]);
  }
  state.sources.add(source);
  const owner = state;
  return () => owner.sources.delete(source);
}

async function collect(
  state: GaugeState,
  result: OtelBatchResult,
  backlog: unknown,
  age: unknown,
): Promise<void> {
  const byTable = new Map<string, { sql: postgres.Sql; channels: Set<string>; packed: string | undefined }>();
  for (const s of state.sources) {
    const entry = byTable.get(s.table) ?? { sql: s.sql, channels: new Set<string>(), packed: s.packed };
    for (const c of s.channels) entry.channels.add(c);
    byTable.set(s.table, entry);
  }
  await Promise.all(
    [...byTable].map(async ([table, { sql, channels, packed }]) => {
      const rows = await sql
        .unsafe(BACKLOG_SQL(table, packed), [`{${[...channels].map((c) => JSON.stringify(c)).join(',')}}`])
        .catch(() => null);
      if (rows === null) return;
      const seen = new Set<string>();
      for (const row of rows) {
        const channel = String(row.channel);
        seen.add(channel);
        const attributes = { 'messaging.system': 'drizzle-pgpubsub', 'messaging.destination.name': channel };
        result.observe(backlog, Number(row.pending), attributes);
        result.observe(age, Number(row.age), attributes);
      }
      for (const channel of channels) {
        if (seen.has(channel)) continue;
        const attributes = { 'messaging.system': 'drizzle-pgpubsub', 'messaging.destination.name': channel };
        result.observe(backlog, 0, attributes);
        result.observe(age, 0, attributes);
      }
    }),
  );
}
