import type postgres from 'postgres';

/** One queue system under test, driven the same way for every workload. */
export interface System {
  /** Key of the system (`ours`, `graphile`, `pgboss`, and the older pins `graphile017`, `pgboss10`). */
  readonly id: SystemId;
  /** Name and installed version, for labels. */
  readonly version: string;
  /** Installs the system's schema into an empty database (the template every run is cloned from). */
  install(url: string): Promise<void>;
  /** Enqueues `n` no-op jobs with payload `{ i }` for i = 1..n, as fast as the system allows. */
  enqueueBulk(url: string, n: number, variant?: Variant): Promise<void>;
  /** Jobs not yet completed (committed as done). */
  remaining(sql: postgres.Sql): Promise<number>;
  /** W8: the most jobs any dedup key has queued or running right now (dedup promises at most 1). */
  maxPendingPerKey(sql: postgres.Sql): Promise<number>;
  /** Starts a worker; `onJob(i)` is called when a job's handler starts. */
  startWorker(url: string, variant: Variant, onJob: (i: number) => void): Promise<WorkerHandle>;
  /** A producer that commits one job per transaction. */
  producer(url: string, variant?: Variant): Promise<Producer>;
}

export type SystemId = 'ours' | 'graphile' | 'pgboss' | 'graphile017' | 'pgboss10';

export interface WorkerHandle {
  stop(): Promise<void>;
}

export interface Producer {
  /** Enqueues job `{ i }` in its own transaction; resolves when the commit is acknowledged. */
  send(i: number): Promise<void>;
  /** Enqueues job `{ i }` due at `runAt` (ours `runAt`, graphile-worker `run_at`, pg-boss `startAfter`). */
  sendDelayed(i: number, runAt: Date): Promise<void>;
  /**
   * Enqueues job `{ i }` with dedup key `key`, keeping the pending job of that key if there is one
   * (ours `onDuplicate: 'skip'`, graphile-worker `job_key_mode: 'unsafe_dedupe'`, pg-boss
   * `singletonKey` on an `exclusive` queue). Resolves whether a new job was created.
   */
  sendKeyed(i: number, key: string): Promise<boolean>;
  close(): Promise<void>;
}

/** A named worker configuration of one system. */
export interface Variant {
  /** Unique key, e.g. `ours`, `ours-b200`, `graphile-batched`. */
  key: string;
  system: SystemId;
  /** Row label in tables. */
  label: string;
  concurrency: number;
  /** ours: batchSize; pg-boss: fetch batch size. */
  batchSize?: number;
  /** graphile-worker: the "batched" preset (local queue, immediate batched completion). */
  batched?: boolean;
  /** ours: listen to W4's trigger channel on `w4_items` instead of the no-op channel. */
  channel?: 'items';
  /** ours: the no-op channel ordered, keyed by `i % ORDER_KEYS` (jobs of one key one at a time). */
  ordered?: boolean;
  /** pg-boss: work the dedup queue (`exclusive` policy, see {@link DEDUP_QUEUE}) instead of the no-op one. */
  dedup?: boolean;
  /** An older pin of `replaces` (same adapter code, older major): `--quick` runs it only when `replaces` cannot run here. */
  replaces?: SystemId;
  /** ours: OpenTelemetry setup of the worker (W1OTEL, bench/lib/otel.ts); absent: the default (API, no SDK). */
  otel?: 'plain' | 'api' | 'sdk' | 'memory';
  /** pg-boss 12: seconds between backstop polls while LISTEN/NOTIFY is active (`notifyPollingIntervalSeconds`). */
  notifyPollSeconds?: number;
}

/** The task/channel name every system uses. */
export const JOB = 'noop';

/** pg-boss's queue for the dedup workload: policy `exclusive` (one job queued or active per singletonKey). */
export const DEDUP_QUEUE = 'noop_dedup';

/** Whether this Node.js is at least `major.minor` (pg-boss 12 needs 22.12, graphile-worker 0.18 22.18). */
export function nodeAtLeast(major: number, minor: number): boolean {
  const [ma = 0, mi = 0] = process.versions.node.split('.').map(Number);
  return ma > major || (ma === major && mi >= minor);
}
