import postgres from 'postgres';
import { loadSystem } from '../systems/index.ts';
import type { Variant } from '../systems/types.ts';
import { WorkerProcess, type WorkerStats, whenHandled } from './child.ts';
import { clusterCpuMs } from './pg.ts';
import { sleep } from './stats.ts';

export interface DrainResult {
  /** From the workers' start() calls to the last job committed as done. */
  seconds: number;
  /** How long start() took in each process (ms). */
  startMs: number[];
  stats: WorkerStats[];
  /** Handler starts over all processes. */
  handled: number;
  /** Jobs left in the table at the end (must be 0). */
  remaining: number;
  /** CPU used by the worker processes during the drain (ms). */
  workerCpuMs: number;
  /** CPU used by the whole PostgreSQL cluster during the drain (ms; NaN for a remote server). */
  pgCpuMs: number;
}

/**
 * Drains a backlog of `jobs` already in the database at `url` with `processes` worker processes of
 * `variant`. The processes are forked and loaded first (not timed); the clock runs from the moment
 * they are told to start until every job is handled and the system's table says all are done.
 */
export async function drain(
  url: string,
  variant: Variant,
  jobs: number,
  {
    processes = 1,
    timeoutMs = 600_000,
    sampleMs,
    nodeFlags = [],
    env = {},
  }: {
    processes?: number;
    timeoutMs?: number;
    sampleMs?: number;
    nodeFlags?: string[];
    /** Extra environment of the worker processes (W1OTEL: `BENCH_OTEL`). */
    env?: Record<string, string>;
  } = {},
): Promise<DrainResult> {
  const system = await loadSystem(variant.system);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const workers = await Promise.all(
    Array.from({ length: processes }, (_, p) =>
      WorkerProcess.spawn(`${variant.key}#${p}`, variant.system, nodeFlags, env),
    ),
  );
  try {
    await sql`SELECT 1`;
    const cpu0 = await clusterCpuMs(sql);
    const t0 = performance.now();
    const allHandled = whenHandled(workers, jobs, timeoutMs);
    const startMs = await Promise.all(
      workers.map((w) => w.start(url, variant, { sampleMs, expected: processes === 1 ? jobs : undefined })),
    );
    await allHandled;
    let remaining = await system.remaining(sql);
    while (remaining > 0) {
      if (performance.now() - t0 > timeoutMs) throw new Error(`${remaining} jobs never completed`);
      await sleep(2);
      remaining = await system.remaining(sql);
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = await clusterCpuMs(sql);
    const workerCpu = await Promise.all(workers.map((w) => w.cpuMs()));
    // Late duplicates would show up as extra handler starts: give them a moment to appear.
    await sleep(50);
    const stats = await Promise.all(workers.map((w) => w.stop()));
    return {
      seconds,
      startMs,
      stats,
      handled: stats.reduce((s, x) => s + x.handled, 0),
      remaining,
      workerCpuMs: workerCpu.reduce((a, b) => a + b, 0),
      pgCpuMs: cpu0 === undefined || cpu1 === undefined ? Number.NaN : cpu1 - cpu0,
    };
  } finally {
    await Promise.all(workers.map((w) => w.kill()));
    await sql.end({ timeout: 5 });
  }
}
