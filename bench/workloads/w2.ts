import { type BenchContext, PEERS, VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { waitNoBackends } from '../lib/pg.ts';
import { percentiles, Recorder, rotate, sleep } from '../lib/stats.ts';
import { loadSystem } from '../systems/index.ts';
import type { Variant } from '../systems/types.ts';

/** Wall-clock milliseconds with sub-millisecond resolution, one clock for producer and worker. */
const now = () => performance.timeOrigin + performance.now();

/** W2 variants `--quick` leaves out. */
const W2_QUICK_REPEATS = new Set(['ours-ordered']);

/**
 * W2: latency from commit to handler start at a steady rate. Producer and worker run in this process
 * so both timestamps come from one clock. The producer is open-loop: job k is sent at t0 + k/rate
 * whether or not earlier ones have committed, each in its own transaction.
 */
export async function w2(
  ctx: BenchContext,
  all: Variant[] = [VARIANTS.ours, VARIANTS.oursOrdered, ...PEERS],
): Promise<WorkloadResult> {
  // --quick leaves out the ordered variant: W1 runs it, and here it would only repeat ours.
  const variants = ctx.pick(ctx.options.quick ? all.filter((v) => !W2_QUICK_REPEATS.has(v.key)) : all);
  const { w2Rate: rate, w2Seconds: seconds } = ctx.sizes;
  const warmup = ctx.sizes.w2Warmup;
  const total = warmup + rate * seconds;
  const rec = new Recorder();
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    for (const variant of rotate(variants, rep)) {
      const system = await loadSystem(variant.system);
      const db = await ctx.fresh(variant.system);
      const sentAt = new Float64Array(total + 1);
      const committedAt = new Float64Array(total + 1);
      const startedAt = new Float64Array(total + 1);
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
        const interval = 1000 / rate;
        const t0 = now() + 5;
        const sends: Promise<void>[] = [];
        let lagMax = 0;
        for (let k = 1; k <= total; k++) {
          const target = t0 + (k - 1) * interval;
          const wait = target - now();
          if (wait > 0) await sleep(wait);
          const at = now();
          lagMax = Math.max(lagMax, at - target);
          sentAt[k] = at;
          sends.push(
            producer.send(k).then(() => {
              committedAt[k] = now();
            }),
          );
        }
        await Promise.all(sends);
        const deadline = now() + 30_000;
        while (handled < total && now() < deadline) await sleep(5);
        if (handled < total) throw new Error(`${variant.key}: only ${handled}/${total} jobs handled`);
        const fromCommit: number[] = [];
        const fromSend: number[] = [];
        for (let k = warmup + 1; k <= total; k++) {
          fromCommit.push(startedAt[k]! - committedAt[k]!);
          fromSend.push(startedAt[k]! - sentAt[k]!);
        }
        const [p50, p90, p99, max] = percentiles(fromCommit, [0.5, 0.9, 0.99, 1]);
        const [s50, s99] = percentiles(fromSend, [0.5, 0.99]);
        const commitMs = fromSend.map((v, j) => v - fromCommit[j]!);
        const [c50] = percentiles(commitMs, [0.5]);
        rec.add(variant, {
          p50Ms: p50!,
          p90Ms: p90!,
          p99Ms: p99!,
          maxMs: max!,
          fromSendP50Ms: s50!,
          fromSendP99Ms: s99!,
          producerCommitP50Ms: c50!,
          producerLagMaxMs: lagMax,
          jobs: total - warmup,
          duplicates,
        });
        ctx.log(`W2 rep ${rep + 1} ${variant.key}: p50 ${p50!.toFixed(2)} ms, p99 ${p99!.toFixed(2)} ms`);
      } finally {
        await worker.stop();
        await producer.close();
        // Clients closing in the background would see DROP … FORCE as an error: let them go first.
        await waitNoBackends(ctx.admin, db.name, 5_000).catch(() => {});
        await ctx.drop(db.name);
      }
    }
  }
  return {
    title: `W2 latency commit → handler start at ${rate} jobs/s for ${seconds} s`,
    params: { rate, seconds, warmup, jobs: rate * seconds },
    rows: rec.result(),
  };
}
