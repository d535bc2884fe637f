import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { createListener } from '../../src/listener.ts';
import { type BenchContext, VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { drain } from '../lib/drain.ts';
import { analyze, dropDatabase, freshDatabase } from '../lib/pg.ts';
import { quantile, Recorder } from '../lib/stats.ts';
import { bulkInsertSql, noop } from '../systems/ours.ts';

/** Claim transactions not timed at the start (connection set-up, first plans). */
const WARM = 2;

interface ClaimTiming {
  /** Median time between consecutive claim transactions' commits, one connection, batch 50 (ms). */
  cycleMs: number;
  cycles: number[];
  /** Statements the listener sent per steady-state claim transaction (BEGIN up to the next BEGIN). */
  statementsPerClaim: number;
  /** Those statements (first words). */
  claimStatements: string[];
  /** The claim statement as the listener sent it. */
  claimSql: string | undefined;
}

/**
 * Runs a listener with concurrency 1 (batch 50) until `batches` claim transactions have committed,
 * and times them from the `processed` events (each batch's events are emitted together after its
 * commit). postgres.js's debug hook records the statements it sends.
 */
async function timeClaims(url: string, batches: number): Promise<ClaimTiming> {
  const statements: string[] = [];
  const sql = postgres(url, {
    max: 2,
    onnotice: () => {},
    debug: (_connection, query) => {
      statements.push(query);
    },
  });
  const commits: number[] = [];
  let tickMarked = false;
  const listener = createListener(drizzle(sql), { concurrency: 1, batchSize: 50, pollIntervalMs: false }).on(
    noop,
    () => {},
  );
  let done!: () => void;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  listener.events.on('processed', () => {
    if (tickMarked) return;
    tickMarked = true;
    commits.push(performance.now());
    queueMicrotask(() => {
      tickMarked = false;
    });
    if (commits.length >= batches) done();
  });
  try {
    await listener.start();
    await finished;
  } finally {
    await listener.stop({ timeoutMs: 10_000 });
    await sql.end({ timeout: 5 });
  }
  const cycles = commits.slice(WARM + 1).map((t, j) => t - commits[j + WARM]!);
  const claimSql = statements.find((s) => /SKIP LOCKED/i.test(s) && /LIMIT/i.test(s));
  const begins = statements.flatMap((s, j) => (/^\s*begin/i.test(s) ? [j] : []));
  const one = begins.length >= 4 ? statements.slice(begins[2], begins[3]) : [];
  return {
    cycleMs: quantile(
      [...cycles].sort((a, b) => a - b),
      0.5,
    ),
    cycles,
    statementsPerClaim: one.length,
    claimStatements: one.map((s) => s.replace(/\s+/g, ' ').trim().slice(0, 48)),
    claimSql,
  };
}

/** EXPLAIN (ANALYZE, BUFFERS) of the listener's claim statement, in a rolled-back transaction. */
async function explainClaim(url: string, claimSql: string | undefined): Promise<string[]> {
  if (!claimSql) return ['(claim statement not captured)'];
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const plan: string[] = [];
  try {
    await sql.begin(async (tx) => {
      await tx.unsafe(`PREPARE bench_claim AS ${claimSql}`);
      const rows = await tx.unsafe(`EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim('${noop.name}', 50)`);
      for (const r of rows) plan.push(r['QUERY PLAN'] as string);
      throw new Rollback();
    });
  } catch (error) {
    if (!(error instanceof Rollback)) plan.push(`EXPLAIN failed: ${error}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  return plan;
}

class Rollback extends Error {}

async function pending(sql: postgres.Sql): Promise<number> {
  const [row] = await sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`;
  return row!.n as number;
}

/**
 * W5: does ours scale with the backlog? Claim transaction latency with `small` vs `large` pending
 * notifications, and a listener's memory while it drains the large backlog (sampled every 100 ms in
 * its own process).
 */
export async function w5(ctx: BenchContext): Promise<WorkloadResult> {
  const { w5Small: small, w5Large: large, w5Samples: samples } = ctx.sizes;
  // Never claim the small backlog dry: leave two batches (one may still be in flight at stop).
  const batches = Math.min(samples + WARM + 1, Math.floor(small / 50) - 2);
  const rec = new Recorder();
  const notes: Record<string, unknown> = {};
  const row = { key: 'ours', label: VARIANTS.ours.label, system: 'ours' };
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    const db = await freshDatabase(ctx.admin, ctx.adminUrl, 'w5', ctx.template('ours'));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(bulkInsertSql(1, small));
      await analyze(db.url);
      const few = await timeClaims(db.url, batches);
      const planSmall = await explainClaim(db.url, few.claimSql);
      let t = performance.now();
      await sql.unsafe(bulkInsertSql(small + 1, small + large - (await pending(sql))));
      const insertSeconds = (performance.now() - t) / 1000;
      await analyze(db.url);
      const planLarge = await explainClaim(db.url, few.claimSql);
      const many = await timeClaims(db.url, batches);
      const backlog = await pending(sql);
      t = performance.now();
      const r = await drain(db.url, VARIANTS.ours, backlog, { sampleMs: 100 });
      const s = r.stats[0]!;
      rec.add(row, {
        claimMsSmall: few.cycleMs,
        claimMsLarge: many.cycleMs,
        claimRatio: many.cycleMs / few.cycleMs,
        statementsPerClaim: many.statementsPerClaim,
        peakRssMb: s.peakRssMb,
        peakHeapMb: s.peakHeapMb,
        baseRssMb: s.baseRssMb,
        baseHeapMb: s.baseHeapMb,
        drainJobsPerSec: backlog / r.seconds,
        drained: r.handled,
        duplicates: s.duplicates,
        insertSeconds,
      });
      if (rep === 0)
        Object.assign(notes, {
          claimSql: few.claimSql,
          claimStatements: many.claimStatements,
          planSmall,
          planLarge,
        });
      ctx.log(
        `W5 rep ${rep + 1}: claim ${few.cycleMs.toFixed(2)} ms @${small} vs ${many.cycleMs.toFixed(2)} ms @${large}; ` +
          `drain ${(backlog / r.seconds).toFixed(0)}/s, peak RSS ${s.peakRssMb.toFixed(0)} MB, heap ${s.peakHeapMb.toFixed(0)} MB`,
      );
    } finally {
      await sql.end({ timeout: 5 });
      await dropDatabase(ctx.admin, db.name);
    }
  }
  return {
    title: `W5 backlog scale: claim latency at ${small.toLocaleString('en-US')} vs ${large.toLocaleString('en-US')} pending; listener memory draining the ${large.toLocaleString('en-US')}`,
    params: { small, large, batchSize: 50, claimSamples: batches - WARM - 1, memorySampleMs: 100 },
    rows: rec.result(),
    notes,
  };
}
