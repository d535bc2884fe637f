import postgres from 'postgres';
import { type BenchContext, VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { waitNoBackends } from '../lib/pg.ts';
import { Recorder, rotate, sleep } from '../lib/stats.ts';
import { loadSystem } from '../systems/index.ts';
import type { Producer, Variant } from '../systems/types.ts';

/**
 * W8: deduplication under concurrent producers. P producer loops (sharing two producer pools of 8
 * connections) each send S jobs, one transaction each, with keys taken round robin from a small set,
 * keeping the pending job of a key (ours `{ key, onDuplicate: 'skip' }`, graphile-worker `job_key`
 * with `job_key_mode: 'unsafe_dedupe'`, pg-boss `singletonKey` on an `exclusive` queue; pg-boss 10 has
 * only `stately`). A worker drains meanwhile. Checked: the most jobs any key had queued or running
 * (sampled every 20 ms), and that the handled job ids are exactly the ones the sends reported as
 * created, each once.
 */
export async function w8(ctx: BenchContext): Promise<WorkloadResult> {
  const { w8Producers: producers, w8Sends: perProducer, w8Keys: keys } = ctx.sizes;
  const total = producers * perProducer;
  const variants: Variant[] = ctx
    .pick([
      VARIANTS.ours,
      VARIANTS.graphileBatched,
      VARIANTS.pgboss,
      VARIANTS.graphile017Batched,
      VARIANTS.pgboss10,
    ])
    .map((v) => ({ ...v, dedup: true }));
  const rec = new Recorder();
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    for (const variant of rotate(variants, rep)) {
      const system = await loadSystem(variant.system);
      const db = await ctx.fresh(variant.system);
      const seen = new Uint8Array(total + 1);
      let handled = 0;
      let duplicates = 0;
      const worker = await system.startWorker(db.url, variant, (i) => {
        if (seen[i]! > 0) duplicates++;
        seen[i] = 1;
        handled++;
      });
      const pools: Producer[] = [
        await system.producer(db.url, variant),
        await system.producer(db.url, variant),
      ];
      const probe = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        await sleep(ctx.options.quick ? 100 : 500);
        const created = new Uint8Array(total + 1);
        let maxPending = 0;
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            maxPending = Math.max(maxPending, await system.maxPendingPerKey(probe));
            await sleep(20);
          }
        })();
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: producers }, async (_, p) => {
            for (let s = 0; s < perProducer; s++) {
              const i = p * perProducer + s + 1;
              if (await pools[p % pools.length]!.sendKeyed(i, `k${i % keys}`)) created[i] = 1;
            }
          }),
        );
        const seconds = (performance.now() - t0) / 1000;
        sampling = false;
        await sampler;
        maxPending = Math.max(maxPending, await system.maxPendingPerKey(probe));
        const expected = created.reduce((a, b) => a + b, 0);
        const deadline = performance.now() + 60_000;
        while ((handled < expected || (await system.remaining(probe)) > 0) && performance.now() < deadline)
          await sleep(5);
        await sleep(100); // late duplicates would show up here
        let missing = 0;
        let unexpected = 0;
        for (let i = 1; i <= total; i++) {
          if (created[i] && !seen[i]) missing++;
          if (!created[i] && seen[i]) unexpected++;
        }
        rec.add(variant, {
          sendsPerSec: total / seconds,
          sends: total,
          created: expected,
          handled,
          duplicates,
          missing,
          unexpected,
          maxPendingPerKey: maxPending,
        });
        ctx.log(
          `W8 rep ${rep + 1} ${variant.key}: ${(total / seconds).toFixed(0)} sends/s, ${expected} created, ${handled} handled, ${missing} missing, ${unexpected} unexpected, max ${maxPending} pending per key`,
        );
      } finally {
        await worker.stop();
        for (const p of pools) await p.close();
        await probe.end({ timeout: 5 });
        await waitNoBackends(ctx.admin, db.name, 5_000).catch(() => {});
        await ctx.drop(db.name);
      }
    }
  }
  return {
    title: `W8 dedup: ${producers} producers × ${perProducer} sends over ${keys} keys, skip duplicates, a worker draining`,
    params: { producers, sendsPerProducer: perProducer, keys },
    rows: rec.result(),
  };
}
