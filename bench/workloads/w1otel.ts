import { type BenchContext, OTEL_VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { drain } from '../lib/drain.ts';
import { analyze } from '../lib/pg.ts';
import { Recorder, rotate } from '../lib/stats.ts';
import { loadSystem } from '../systems/index.ts';

/**
 * W1OTEL (issue #19): W1's drain, ours only, under each OpenTelemetry setup (bench/lib/otel.ts):
 * off, the API without an SDK, an SDK with no exporter or reader, an SDK with an in-memory exporter
 * and reader. The setups of a repetition drain at the same time, each in its own worker process and
 * database (all enqueued first), so that they share whatever else loads the machine: measured one
 * after another on a shared machine, CPU per job drifted by more than the 5 % this is about. Each
 * row gets its per-repetition ratios to the `plain` row: listener CPU per job and jobs/s.
 * PostgreSQL's CPU is not split between the setups (it is the cluster's), so it is not reported.
 */
export async function w1otel(ctx: BenchContext): Promise<WorkloadResult> {
  const n = ctx.sizes.w1OtelJobs;
  const variants = OTEL_VARIANTS;
  const rec = new Recorder();
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    const order = rotate(variants, rep);
    const dbs = await Promise.all(order.map((v) => ctx.fresh(v.system)));
    try {
      for (const [i, variant] of order.entries()) {
        await (await loadSystem(variant.system)).enqueueBulk(dbs[i]!.url, n, variant);
        await analyze(dbs[i]!.url);
      }
      // Each forked worker registers its setup before it loads anything else (bench/worker.ts).
      const results = await Promise.all(
        order.map((variant, i) => drain(dbs[i]!.url, variant, n, { env: { BENCH_OTEL: variant.otel! } })),
      );
      const measured = new Map<string, { workerUs: number; jobsPerSec: number }>();
      for (const [i, variant] of order.entries()) {
        const r = results[i]!;
        const s = r.stats[0]!;
        const workerUs = (r.workerCpuMs * 1000) / n;
        measured.set(variant.key, { workerUs, jobsPerSec: n / r.seconds });
        rec.add(variant, {
          jobsPerSec: n / r.seconds,
          seconds: r.seconds,
          workerCpuUsPerJob: workerUs,
          distinct: s.distinct,
          duplicates: s.duplicates,
        });
        ctx.log(
          `W1OTEL rep ${rep + 1} ${variant.key}: ${(n / r.seconds).toFixed(0)} jobs/s, listener ${workerUs.toFixed(2)} µs CPU/job (${r.handled} handled, ${s.duplicates} dup)`,
        );
      }
      const plain = measured.get('ours-otel-plain');
      if (!plain) continue;
      for (const variant of variants) {
        const m = measured.get(variant.key);
        if (!m) continue;
        rec.add(variant, {
          workerCpuRatio: m.workerUs / plain.workerUs,
          jobsPerSecRatio: m.jobsPerSec / plain.jobsPerSec,
        });
      }
    } finally {
      for (const db of dbs) await ctx.drop(db.name);
    }
  }
  return {
    title: `W1OTEL drain ${n.toLocaleString('en-US')} pre-enqueued no-op jobs (ours, c10, batch 100) under each OpenTelemetry setup, the setups draining at the same time`,
    params: { jobs: n, concurrency: 10, batchSize: 100, together: variants.length },
    rows: rec.result(),
  };
}
