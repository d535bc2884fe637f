import { type BenchContext, OTEL_VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { drain } from '../lib/drain.ts';
import { analyze } from '../lib/pg.ts';
import { Recorder, rotate } from '../lib/stats.ts';
import { loadSystem } from '../systems/index.ts';

/**
 * W1OTEL (issue #19): W1's drain, ours only, under each OpenTelemetry setup (bench/lib/otel.ts):
 * off, the API without an SDK, an SDK with no exporter or reader, an SDK with an in-memory exporter
 * and reader. Besides W1's metrics, each row gets its per-repetition ratios to the `plain` row of
 * the same repetition (the setups run back to back, in rotated order): listener CPU per job and
 * jobs/s.
 */
export async function w1otel(ctx: BenchContext): Promise<WorkloadResult> {
  const n = ctx.sizes.w1OtelJobs;
  const variants = OTEL_VARIANTS;
  const rec = new Recorder();
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    const measured = new Map<string, { workerUs: number; jobsPerSec: number }>();
    for (const variant of rotate(variants, rep)) {
      const db = await ctx.fresh(variant.system);
      try {
        await (await loadSystem(variant.system)).enqueueBulk(db.url, n, variant);
        await analyze(db.url);
        // The forked worker registers this setup before it loads anything else (bench/worker.ts).
        process.env.BENCH_OTEL = variant.otel;
        const r = await drain(db.url, variant, n).finally(() => {
          delete process.env.BENCH_OTEL;
        });
        const s = r.stats[0]!;
        const workerUs = (r.workerCpuMs * 1000) / n;
        measured.set(variant.key, { workerUs, jobsPerSec: n / r.seconds });
        rec.add(variant, {
          jobsPerSec: n / r.seconds,
          seconds: r.seconds,
          workerCpuUsPerJob: workerUs,
          cpuUsPerJob: ((r.workerCpuMs + r.pgCpuMs) * 1000) / n,
          distinct: s.distinct,
          duplicates: s.duplicates,
        });
        ctx.log(
          `W1OTEL rep ${rep + 1} ${variant.key}: ${(n / r.seconds).toFixed(0)} jobs/s, listener ${workerUs.toFixed(2)} µs CPU/job (${r.handled} handled, ${s.duplicates} dup)`,
        );
      } finally {
        await ctx.drop(db.name);
      }
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
  }
  return {
    title: `W1OTEL drain ${n.toLocaleString('en-US')} pre-enqueued no-op jobs (ours, c10, batch 100) under each OpenTelemetry setup`,
    params: { jobs: n, concurrency: 10, batchSize: 100 },
    rows: rec.result(),
  };
}
