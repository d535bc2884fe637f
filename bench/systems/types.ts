import type postgres from 'postgres';

/** One queue system under test, driven the same way for every workload. */
export interface System {
  /** Key of the system (`ours`, `graphile`, `pgboss`). */
  readonly id: SystemId;
  /** Installs the system's schema into an empty database (the template every run is cloned from). */
  install(url: string): Promise<void>;
  /** Enqueues `n` no-op jobs with payload `{ i }` for i = 1..n, as fast as the system allows. */
  enqueueBulk(url: string, n: number, variant?: Variant): Promise<void>;
  /** Jobs not yet completed (committed as done). */
  remaining(sql: postgres.Sql): Promise<number>;
  /** Starts a worker; `onJob(i)` is called when a job's handler starts. */
  startWorker(url: string, variant: Variant, onJob: (i: number) => void): Promise<WorkerHandle>;
  /** A producer that commits one job per transaction. */
  producer(url: string, variant?: Variant): Promise<Producer>;
}

export type SystemId = 'ours' | 'graphile' | 'pgboss';

export interface WorkerHandle {
  stop(): Promise<void>;
}

export interface Producer {
  /** Enqueues job `{ i }` in its own transaction; resolves when the commit is acknowledged. */
  send(i: number): Promise<void>;
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
}

/** The task/channel name every system uses. */
export const JOB = 'noop';
