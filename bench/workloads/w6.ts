import { type BenchContext, VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { drain } from '../lib/drain.ts';
import { analyze } from '../lib/pg.ts';
import { Recorder, rotate } from '../lib/stats.ts';
import { ours } from '../systems/ours.ts';

const SETUPS = [
  { processes: 1, key: 'ours-1p', label: 'drizzle-pgpubsub, 1 process (c10, batch 100)', system: 'ours' },
  {
    processes: 4,
    key: 'ours-4p',
    label: 'drizzle-pgpubsub, 4 processes (c10, batch 100 each)',
    system: 'ours',
  },
];

/** W6: does ours scale out? 4 worker processes vs 1 draining the same backlog. */
export async function w6(ctx: BenchContext): Promise<WorkloadResult> {
  const n = ctx.sizes.w6Jobs;
  const rec = new Recorder();
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    for (const setup of rotate(SETUPS, rep)) {
      const db = await ctx.fresh('ours');
      try {
        await ours.enqueueBulk(db.url, n);
        await analyze(db.url);
        const r = await drain(db.url, VARIANTS.ours, n, { processes: setup.processes });
        rec.add(setup, {
          jobsPerSec: n / r.seconds,
          seconds: r.seconds,
          handled: r.handled,
          remaining: r.remaining,
          duplicates: r.stats.reduce((s, x) => s + x.duplicates, 0),
          workerCpuMs: r.workerCpuMs,
          pgCpuMs: r.pgCpuMs,
          cpuUsPerJob: ((r.workerCpuMs + r.pgCpuMs) * 1000) / n,
          // Cores busy on this workload (worker processes + PostgreSQL) over the drain.
          coresBusy: (r.workerCpuMs + r.pgCpuMs) / (r.seconds * 1000),
        });
        ctx.log(`W6 rep ${rep + 1} ${setup.processes} process(es): ${(n / r.seconds).toFixed(0)} jobs/s`);
      } finally {
        await ctx.drop(db.name);
      }
    }
  }
  return {
    title: `W6 scale-out: drain ${n.toLocaleString('en-US')} jobs with 4 processes vs 1`,
    params: { jobs: n, concurrencyPerProcess: 10, batchSize: VARIANTS.ours.batchSize },
    rows: rec.result(),
  };
}
