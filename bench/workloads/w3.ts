import { type NoWorker, WorkerProcess } from '../lib/child.ts';
import { type BenchContext, PEERS, VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { waitNoBackends, xactCount } from '../lib/pg.ts';
import { Recorder, sleep } from '../lib/stats.ts';
import type { Variant } from '../systems/types.ts';

const CONTROL: NoWorker = {
  key: 'control',
  label: 'control: no worker (node process, empty database)',
  system: 'none',
};

/**
 * W3: an idle worker's cost. Every system's worker runs in its own process against its own empty
 * database, all at once (they are idle, so they do not disturb each other), plus a control database
 * with no worker at all.
 *
 * Transactions: the `pg_stat_database` delta of the worker's database, read from the admin database
 * (so the measurement's own queries are not counted). Backends report their statistics up to 10 s
 * late when idle, so: start-up, then a settle period longer than that; snapshot; the idle window;
 * then the worker process is killed (its backends exit, which flushes their statistics, and no
 * shutdown queries are sent) and the second snapshot is taken once they are gone. The control
 * database shows what the server itself adds (autovacuum visits).
 *
 * CPU: `process.cpuUsage()` of the worker process over the same window.
 */
export async function w3(ctx: BenchContext): Promise<WorkloadResult> {
  const { w3Settle: settle, w3Seconds: seconds } = ctx.sizes;
  const variants: (Variant | NoWorker)[] = ctx.pick<Variant | NoWorker>([VARIANTS.ours, ...PEERS, CONTROL]);
  const rec = new Recorder();
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    const dbs = await Promise.all(variants.map((v) => ctx.fresh(v.system === 'none' ? 'ours' : v.system)));
    const workers = await Promise.all(variants.map((v) => WorkerProcess.spawn(`${v.key}#idle`, v.system)));
    try {
      await Promise.all(workers.map((w, j) => w.start(dbs[j]!.url, variants[j]!, { sampleMs: 0 })));
      await sleep(settle * 1000);
      const before = await Promise.all(dbs.map((d) => xactCount(ctx.admin, d.name)));
      await Promise.all(workers.map((w) => w.cpuMs(true)));
      await sleep(seconds * 1000);
      const cpu = await Promise.all(workers.map((w) => w.cpuMs()));
      const handled = workers.map((w) => w.handled);
      await Promise.all(workers.map((w) => w.kill()));
      await Promise.all(dbs.map((d) => waitNoBackends(ctx.admin, d.name)));
      const after = await Promise.all(dbs.map((d) => xactCount(ctx.admin, d.name)));
      variants.forEach((variant, j) => {
        const xacts = after[j]! - before[j]!;
        rec.add(variant, { xacts, cpuMs: cpu[j]!, handled: handled[j]! });
        ctx.log(
          `W3 rep ${rep + 1} ${variant.key}: ${xacts} transactions, ${cpu[j]!.toFixed(1)} ms CPU in ${seconds} s`,
        );
      });
    } finally {
      await Promise.all(workers.map((w) => w.kill()));
      for (const d of dbs) await ctx.drop(d.name);
    }
  }
  return {
    title: `W3 idle for ${seconds} s after start-up settled (${settle} s)`,
    params: { settleSeconds: settle, seconds },
    rows: rec.result(),
  };
}
