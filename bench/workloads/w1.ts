import { type BenchContext, oursWithBatch, PEERS, VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { drain } from '../lib/drain.ts';
import { analyze } from '../lib/pg.ts';
import { Recorder, rotate } from '../lib/stats.ts';
import { loadSystem } from '../systems/index.ts';
import type { Variant } from '../systems/types.ts';

/** W1: drain N pre-enqueued no-op jobs with one process at concurrency 10. */
export async function w1(ctx: BenchContext): Promise<WorkloadResult> {
  const n = ctx.sizes.w1Jobs;
  const variants: Variant[] = ctx.pick([
    VARIANTS.ours,
    VARIANTS.oursOrdered,
    ...ctx.sizes.w1Batches.map(oursWithBatch),
    ...PEERS,
  ]);
  const rec = new Recorder();
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    for (const variant of rotate(variants, rep)) {
      const db = await ctx.fresh(variant.system);
      try {
        const t = performance.now();
        await (await loadSystem(variant.system)).enqueueBulk(db.url, n, variant);
        const enqueueSeconds = (performance.now() - t) / 1000;
        await analyze(db.url);
        const r = await drain(db.url, variant, n);
        const s = r.stats[0]!;
        rec.add(variant, {
          jobsPerSec: n / r.seconds,
          seconds: r.seconds,
          startMs: r.startMs[0]!,
          enqueueSeconds,
          enqueuePerSec: n / enqueueSeconds,
          handled: r.handled,
          distinct: s.distinct,
          duplicates: s.duplicates,
          remaining: r.remaining,
          peakRssMb: s.peakRssMb,
          workerCpuMs: r.workerCpuMs,
          pgCpuMs: r.pgCpuMs,
          // CPU per job, worker and PostgreSQL together: steadier than jobs/s on a shared machine.
          cpuUsPerJob: ((r.workerCpuMs + r.pgCpuMs) * 1000) / n,
        });
        ctx.log(
          `W1 rep ${rep + 1} ${variant.key}: ${(n / r.seconds).toFixed(0)} jobs/s, ${(((r.workerCpuMs + r.pgCpuMs) * 1000) / n).toFixed(0)} µs CPU/job (${r.handled} handled, ${s.duplicates} dup)`,
        );
      } finally {
        await ctx.drop(db.name);
      }
    }
  }
  return {
    title: `W1 drain ${n.toLocaleString('en-US')} pre-enqueued no-op jobs, 1 process, concurrency 10`,
    params: { jobs: n, concurrency: 10, ourBatches: [VARIANTS.ours.batchSize, ...ctx.sizes.w1Batches] },
    rows: rec.result(),
  };
}
