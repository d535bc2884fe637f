import { type BenchContext, VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { clusterCpuMs, waitNoBackends } from '../lib/pg.ts';
import { percentiles, Recorder, rotate, sleep } from '../lib/stats.ts';
import { loadSystem } from '../systems/index.ts';
import type { Variant } from '../systems/types.ts';

/** Wall-clock milliseconds with sub-millisecond resolution, one clock for producer and worker. */
const now = () => performance.timeOrigin + performance.now();

/**
 * W7: delayed jobs. N jobs are enqueued at once (one transaction each, 8 connections), due at times
 * spread evenly over the next few seconds (ours `runAt`, graphile-worker `run_at`, pg-boss
 * `startAfter`); lateness = handler start − due time. Producer and worker run in this process (one
 * clock), so the CPU figure is this process's (the worker plus an idle harness) and PostgreSQL's,
 * from the end of enqueueing to the last handler start: what waiting for due jobs costs.
 */
export async function w7(ctx: BenchContext): Promise<WorkloadResult> {
  const { w7Jobs: n, w7LeadSeconds: lead, w7SpreadSeconds: spread } = ctx.sizes;
  const variants: Variant[] = ctx.pick([
    VARIANTS.ours,
    VARIANTS.graphileBatched,
    VARIANTS.graphileDefault,
    {
      ...VARIANTS.pgboss,
      key: 'pgboss',
      label: 'pg-boss 12 (as W1, notifyPollingIntervalSeconds 0.5)',
      notifyPollSeconds: 0.5,
    },
    VARIANTS.graphile017Batched,
    VARIANTS.pgboss10,
  ]);
  const rec = new Recorder();
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    for (const variant of rotate(variants, rep)) {
      const system = await loadSystem(variant.system);
      const db = await ctx.fresh(variant.system);
      const due = new Float64Array(n + 1);
      const startedAt = new Float64Array(n + 1);
      let handled = 0;
      let duplicates = 0;
      const worker = await system.startWorker(db.url, variant, (i) => {
        if (startedAt[i]! > 0) duplicates++;
        else startedAt[i] = now();
        handled++;
      });
      const producer = await system.producer(db.url, variant);
      try {
        await sleep(ctx.options.quick ? 100 : 500); // let the worker settle into its idle state
        // Whole milliseconds: a Date holds no fraction, so a fractional due time would make a job that
        // starts on time look up to 1 ms early.
        const t0 = Math.ceil(now() + lead * 1000);
        const sends: Promise<void>[] = [];
        for (let i = 1; i <= n; i++) {
          due[i] = t0 + Math.round(((i - 1) * spread * 1000) / Math.max(1, n - 1));
          sends.push(producer.sendDelayed(i, new Date(due[i]!)));
        }
        await Promise.all(sends);
        const enqueuedAt = now();
        const cpu0 = process.cpuUsage();
        const pg0 = await clusterCpuMs(ctx.admin);
        const deadline = t0 + spread * 1000 + 60_000;
        while (handled < n && now() < deadline) await sleep(2);
        const end = now();
        const cpu = process.cpuUsage(cpu0);
        const pg1 = await clusterCpuMs(ctx.admin);
        if (handled < n) throw new Error(`${variant.key}: only ${handled}/${n} delayed jobs handled`);
        const lateness: number[] = [];
        let early = 0;
        for (let i = 1; i <= n; i++) {
          const late = startedAt[i]! - due[i]!;
          if (late < 0) early++;
          lateness.push(late);
        }
        const [p50, p90, p99, max] = percentiles(lateness, [0.5, 0.9, 0.99, 1]);
        const windowS = (end - enqueuedAt) / 1000;
        const processCpuMs = (cpu.user + cpu.system) / 1000;
        const pgCpuMs = pg0 === undefined || pg1 === undefined ? Number.NaN : pg1 - pg0;
        rec.add(variant, {
          p50Ms: p50!,
          p90Ms: p90!,
          p99Ms: p99!,
          maxMs: max!,
          early,
          enqueueMs: enqueuedAt - (t0 - lead * 1000),
          windowS,
          processCpuMsPerS: processCpuMs / windowS,
          pgCpuMsPerS: pgCpuMs / windowS,
          handled,
          duplicates,
        });
        ctx.log(
          `W7 rep ${rep + 1} ${variant.key}: lateness p50 ${p50!.toFixed(1)} ms, p99 ${p99!.toFixed(1)} ms, CPU ${(processCpuMs / windowS).toFixed(1)} + ${(pgCpuMs / windowS).toFixed(1)} ms/s`,
        );
      } finally {
        await worker.stop();
        await producer.close();
        await waitNoBackends(ctx.admin, db.name, 5_000).catch(() => {});
        await ctx.drop(db.name);
      }
    }
  }
  return {
    title: `W7 delayed jobs: ${n.toLocaleString('en-US')} jobs due over ${spread} s, from ${lead} s ahead; lateness = handler start − due time`,
    params: { jobs: n, leadSeconds: lead, spreadSeconds: spread },
    rows: rec.result(),
  };
}
