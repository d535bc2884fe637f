import type postgres from 'postgres';
import type { SystemId, Variant } from '../systems/types.ts';
import type { Database } from './pg.ts';
import type { Row } from './stats.ts';

/** Sizes of the workloads; `--quick` shrinks them to a smoke test. */
export interface Sizes {
  w1Jobs: number;
  /** W1OTEL: jobs per drain (more than W1's: the ratios it reports need a steady per-job CPU). */
  w1OtelJobs: number;
  /** Batch sizes tried for ours besides the main row's default (100); the best is reported as its own row. */
  w1Batches: number[];
  w2Rate: number;
  w2Seconds: number;
  /** Jobs sent before the measured ones (connections, first plans); not counted. */
  w2Warmup: number;
  w3Settle: number;
  w3Seconds: number;
  /** Seconds of single-row INSERTs per case; 0: a fixed `w4Transactions` per client instead (quick). */
  w4Seconds: number;
  w4Transactions: number;
  w4Clients: number;
  w4BulkRows: number;
  w5Small: number;
  w5Large: number;
  w5Samples: number;
  w6Jobs: number;
  /** W7: delayed jobs, due times spread evenly over `w7SpreadSeconds`, the first `w7LeadSeconds` ahead. */
  w7Jobs: number;
  w7LeadSeconds: number;
  w7SpreadSeconds: number;
  /** W8: producers × sends each, over `w8Keys` dedup keys (round robin). */
  w8Producers: number;
  w8Sends: number;
  w8Keys: number;
}

export const FULL: Sizes = {
  w1Jobs: 20_000,
  w1OtelJobs: 50_000,
  w1Batches: [20, 50, 200],
  w2Rate: 200,
  w2Seconds: 10,
  w2Warmup: 50,
  // Idle backends flush their statistics up to 10 s late (PGSTAT_IDLE_INTERVAL), and V8's memory reducer
  // runs one to three full GCs (30–50 ms of CPU) some 8–20 s after start-up: settle past both.
  w3Settle: 30,
  w3Seconds: 10,
  w4Seconds: 10,
  w4Transactions: 0,
  w4Clients: 10,
  w4BulkRows: 100_000,
  w5Small: 1_000,
  w5Large: 1_000_000,
  w5Samples: 24,
  w6Jobs: 60_000,
  w7Jobs: 500,
  w7LeadSeconds: 1.5,
  w7SpreadSeconds: 5,
  w8Producers: 10,
  w8Sends: 300,
  w8Keys: 20,
};

export const QUICK: Sizes = {
  w1Jobs: 300,
  w1OtelJobs: 300,
  w1Batches: [],
  w2Rate: 200,
  w2Seconds: 0.5,
  w2Warmup: 10,
  w3Settle: 0.25,
  w3Seconds: 0.25,
  w4Seconds: 0,
  w4Transactions: 100,
  w4Clients: 2,
  w4BulkRows: 2_000,
  w5Small: 300,
  w5Large: 3_000,
  w5Samples: 3,
  w6Jobs: 400,
  w7Jobs: 30,
  w7LeadSeconds: 0.4,
  w7SpreadSeconds: 0.3,
  w8Producers: 3,
  w8Sends: 10,
  w8Keys: 4,
};

export interface BenchOptions {
  only: WorkloadId[];
  reps: number;
  quick: boolean;
}

export type WorkloadId = 'W1' | 'W1OTEL' | 'W2' | 'W3' | 'W4' | 'W5' | 'W6' | 'W7' | 'W8';
export const WORKLOADS: WorkloadId[] = ['W1', 'W1OTEL', 'W2', 'W3', 'W4', 'W5', 'W6', 'W7', 'W8'];

export interface BenchContext {
  adminUrl: string;
  admin: postgres.Sql;
  /** A fresh database cloned from `system`'s migrated template. */
  fresh(system: SystemId): Promise<Database>;
  /** Drops a database made by fresh(). */
  drop(name: string): Promise<void>;
  options: BenchOptions;
  sizes: Sizes;
  /** Name of the migrated template database of a system. */
  template(system: SystemId): string;
  /**
   * The variants that run here: systems this Node.js cannot run are left out (logged and listed in
   * `skipped`), and `--quick` runs an older pin only when the system it `replaces` cannot run.
   */
  pick<V extends Variant | { system: 'none' }>(variants: V[]): V[];
  /** Systems left out of this run, with why. */
  skipped: Partial<Record<SystemId, string>>;
  log(message: string): void;
}

/** What a workload returns: its parameters, its rows, and notes (e.g. EXPLAIN output). */
export interface WorkloadResult {
  title: string;
  params: Record<string, unknown>;
  rows: Row[];
  notes?: Record<string, unknown>;
}

/** The peer configurations, as the issues (#18 for the current majors) specify them. */
export const VARIANTS = {
  ours: {
    key: 'ours',
    system: 'ours',
    label: 'drizzle-pgpubsub (c10, batch 100: default)',
    concurrency: 10,
    batchSize: 100,
  },
  oursOrdered: {
    key: 'ours-ordered',
    system: 'ours',
    label: 'drizzle-pgpubsub ordered (1,000 keys; c10, batch 100)',
    concurrency: 10,
    batchSize: 100,
    ordered: true,
  },
  graphileBatched: {
    key: 'graphile-batched',
    system: 'graphile',
    label: 'graphile-worker 0.18 batched',
    concurrency: 10,
    batchSize: 50,
    batched: true,
  },
  graphileDefault: {
    key: 'graphile-default',
    system: 'graphile',
    label: 'graphile-worker 0.18 defaults',
    concurrency: 10,
  },
  pgboss: {
    key: 'pgboss',
    system: 'pgboss',
    label: 'pg-boss 12 (LISTEN/NOTIFY, localConcurrency 10, batch 50, burst)',
    concurrency: 10,
    batchSize: 50,
  },
  graphile017Batched: {
    key: 'graphile017-batched',
    system: 'graphile017',
    label: 'graphile-worker 0.17.3 batched',
    concurrency: 10,
    batchSize: 50,
    batched: true,
    replaces: 'graphile',
  },
  graphile017Default: {
    key: 'graphile017-default',
    system: 'graphile017',
    label: 'graphile-worker 0.17.3 defaults',
    concurrency: 10,
    replaces: 'graphile',
  },
  pgboss10: {
    key: 'pgboss10',
    system: 'pgboss10',
    label: 'pg-boss 10.4.2 (batch 50, poll 0.5 s)',
    concurrency: 10,
    batchSize: 50,
    replaces: 'pgboss',
  },
} satisfies Record<string, Variant>;

/** The peers of W1–W3, current majors first, then the older pins. */
export const PEERS: Variant[] = [
  VARIANTS.graphileBatched,
  VARIANTS.graphileDefault,
  VARIANTS.pgboss,
  VARIANTS.graphile017Batched,
  VARIANTS.graphile017Default,
  VARIANTS.pgboss10,
];

/** W1OTEL's rows: ours (c10, batch 100) under each OpenTelemetry setup of bench/lib/otel.ts. */
export const OTEL_VARIANTS: Variant[] = [
  { ...VARIANTS.ours, key: 'ours-otel-plain', label: 'ours, tracing and metrics off', otel: 'plain' },
  { ...VARIANTS.ours, key: 'ours-otel-api', label: 'ours, @opentelemetry/api, no SDK', otel: 'api' },
  {
    ...VARIANTS.ours,
    key: 'ours-otel-sdk',
    label: 'ours, SDK registered, no exporter or reader',
    otel: 'sdk',
  },
  {
    ...VARIANTS.ours,
    key: 'ours-otel-memory',
    label: 'ours, SDK with in-memory exporter and reader',
    otel: 'memory',
  },
];

export function oursWithBatch(batchSize: number): Variant {
  return {
    key: `ours-b${batchSize}`,
    system: 'ours',
    label: `drizzle-pgpubsub (c10, batch ${batchSize})`,
    concurrency: 10,
    batchSize,
  };
}
