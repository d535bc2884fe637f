import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { createListener } from '../../src/index.ts';
import { type BenchContext, VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { drain } from '../lib/drain.ts';
import { analyze } from '../lib/pg.ts';
import { percentiles, Recorder } from '../lib/stats.ts';
import { bulkInsertSql, noop } from '../systems/ours.ts';

/** Claim transactions per listener run; the first two commits are not timed (start-up). */
const CLAIMS_PER_RUN = 6;
const SKIP = 2;

/** A database with a backlog and a long-lived client whose statements are recorded. */
interface Backlog {
  label: 'small' | 'large';
  size: number;
  name: string;
  url: string;
  sql: postgres.Sql;
  statements: string[];
  /** Highest payload id inserted so far. */
  last: number;
}

/** The node flag docs/operations.md recommends for listener processes. */
export const SEMI_SPACE_FLAG = '--max-semi-space-size=2';

async function openBacklog(ctx: BenchContext, label: Backlog['label'], size: number): Promise<Backlog> {
  const db = await ctx.fresh('ours');
  const statements: string[] = [];
  const sql = postgres(db.url, {
    max: 2,
    onnotice: () => {},
    debug: (_connection, query) => {
      statements.push(query);
    },
  });
  await sql.unsafe(bulkInsertSql(1, size));
  await analyze(db.url);
  return { label, size, ...db, sql, statements, last: size };
}

async function pending(sql: postgres.Sql): Promise<number> {
  const [row] = await sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`;
  return row!.n as number;
}

/** Inserts what the claims consumed, so the backlog is back at its nominal size. */
async function topUp(b: Backlog): Promise<void> {
  const missing = b.size - (await pending(b.sql));
  if (missing <= 0) return;
  await b.sql.unsafe(bulkInsertSql(b.last + 1, b.last + missing));
  b.last += missing;
}

/**
 * Runs a listener (concurrency 1, batch 50, the runtime's own claim path) until CLAIMS_PER_RUN claim
 * transactions have committed, and returns the times between consecutive commits after the first
 * SKIP (each batch's `processed` events are emitted together right after its commit).
 */
async function claimCycles(b: Backlog): Promise<number[]> {
  const commits: number[] = [];
  let marked = false;
  const listener = createListener(drizzle({ client: b.sql }), {
    concurrency: 1,
    batchSize: 50,
    pollIntervalMs: false,
  }).on(noop, () => {});
  let done!: () => void;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  listener.events.on('processed', () => {
    if (marked) return;
    marked = true;
    commits.push(performance.now());
    queueMicrotask(() => {
      marked = false;
    });
    if (commits.length >= CLAIMS_PER_RUN) done();
  });
  try {
    await listener.start();
    await finished;
  } finally {
    await listener.stop({ timeoutMs: 10_000 });
  }
  return commits.slice(SKIP + 1).map((t, j) => t - commits[j + SKIP]!);
}

/** EXPLAIN (ANALYZE, BUFFERS) of the listener's claim statement, rolled back. */
async function explainClaim(b: Backlog, claimSql: string): Promise<{ ms: number; plan: string[] }> {
  const plan: string[] = [];
  await b.sql
    .begin(async (tx) => {
      // PREPARE is not undone by ROLLBACK: deallocate explicitly.
      await tx.unsafe(`PREPARE bench_claim AS ${claimSql}`);
      // The limit is a parameter in older versions of the claim statement, a literal in newer ones.
      const args = /\$2\b/.test(claimSql) ? `'${noop.name}', 50` : `'${noop.name}'`;
      const rows = await tx.unsafe(`EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_claim(${args})`);
      await tx.unsafe('DEALLOCATE bench_claim');
      for (const r of rows) plan.push(r['QUERY PLAN'] as string);
      throw new Rollback();
    })
    .catch((error) => {
      if (!(error instanceof Rollback)) throw error;
    });
  const ms = Number(/Execution Time: ([\d.]+) ms/.exec(plan.join('\n'))?.[1] ?? Number.NaN);
  return { ms, plan };
}

class Rollback extends Error {}

/** One steady-state claim transaction's statements: from the third BEGIN up to the fourth. */
function oneClaim(statements: string[]): string[] {
  const begins = statements.flatMap((s, j) => (/^\s*begin/i.test(s) ? [j] : []));
  return begins.length >= 4 ? statements.slice(begins[2], begins[3]) : [];
}

/**
 * W5: does ours scale with the backlog? (a) Claim transaction latency with `small` vs `large` pending
 * notifications: two databases side by side, timed in alternating short runs of the listener (the
 * small backlog topped up between runs), so machine noise hits both alike; plus the claim statement's
 * server-side execution time from EXPLAIN ANALYZE. (b) A listener's memory while it drains the
 * large backlog, sampled every 100 ms in its own process.
 */
export async function w5(ctx: BenchContext): Promise<WorkloadResult> {
  const { w5Small: small, w5Large: large, w5Samples: samples } = ctx.sizes;
  const runs = Math.max(1, Math.ceil(samples / (CLAIMS_PER_RUN - SKIP - 1)));
  const rec = new Recorder();
  const notes: Record<string, unknown> = {};
  const row = { key: 'ours', label: VARIANTS.ours.label, system: 'ours' };
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    const t = performance.now();
    const backlogs = [await openBacklog(ctx, 'small', small), await openBacklog(ctx, 'large', large)];
    const insertSeconds = (performance.now() - t) / 1000;
    try {
      const cycles: Record<string, number[]> = { small: [], large: [] };
      for (let run = 0; run < runs; run++) {
        for (const b of run % 2 === 0 ? backlogs : [...backlogs].reverse()) {
          cycles[b.label]!.push(...(await claimCycles(b)));
          await topUp(b);
        }
      }
      const claimSql = backlogs[0]!.statements.find((s) => /SKIP LOCKED/i.test(s) && /LIMIT/i.test(s));
      const explains: Record<string, number[]> = { small: [], large: [] };
      const plans: Record<string, string[]> = {};
      if (claimSql) {
        for (let i = 0; i < (ctx.options.quick ? 2 : 10); i++) {
          for (const b of backlogs) {
            const e = await explainClaim(b, claimSql);
            explains[b.label]!.push(e.ms);
            plans[b.label] = e.plan;
          }
        }
      }
      const [smallMs] = percentiles(cycles.small!, [0.5]);
      const [largeMs] = percentiles(cycles.large!, [0.5]);
      const [smallExec] = percentiles(explains.small!, [0.5]);
      const [largeExec] = percentiles(explains.large!, [0.5]);
      const big = backlogs[1]!;
      const backlog = await pending(big.sql);
      const r = await drain(big.url, VARIANTS.ours, backlog, { sampleMs: 100 });
      const s = r.stats[0]!;
      // Again with V8's young generation capped (its default grows to 2 × 16 MB under a steady
      // allocation rate): the setting docs/operations.md recommends for listener processes.
      // --quick (a smoke run of the harness) skips this second drain of the same code.
      const cappedMetrics: Record<string, number> = {};
      if (!ctx.options.quick) {
        await big.sql.unsafe(bulkInsertSql(big.last + 1, big.last + backlog));
        big.last += backlog;
        await analyze(big.url);
        const capped = await drain(big.url, VARIANTS.ours, backlog, {
          sampleMs: 100,
          nodeFlags: [SEMI_SPACE_FLAG],
        });
        cappedMetrics.peakRssCappedMb = capped.stats[0]!.peakRssMb;
        cappedMetrics.drainCappedJobsPerSec = backlog / capped.seconds;
      }
      rec.add(
        row,
        {
          claimMsSmall: smallMs!,
          claimMsLarge: largeMs!,
          claimRatio: largeMs! / smallMs!,
          execMsSmall: smallExec!,
          execMsLarge: largeExec!,
          execRatio: largeExec! / smallExec!,
          statementsPerClaim: oneClaim(big.statements).length,
          peakRssMb: s.peakRssMb,
          ...cappedMetrics,
          peakHeapMb: s.peakHeapMb,
          baseRssMb: s.baseRssMb,
          baseHeapMb: s.baseHeapMb,
          drainJobsPerSec: backlog / r.seconds,
          cpuUsPerJob: ((r.workerCpuMs + r.pgCpuMs) * 1000) / backlog,
          drained: r.handled,
          duplicates: s.duplicates,
          insertSeconds,
        },
        { claimCycles: cycles, memorySeries: s.memory },
      );
      if (rep === 0) {
        Object.assign(notes, {
          claimSql,
          claimStatements: oneClaim(big.statements).map((x) => x.replace(/\s+/g, ' ').trim().slice(0, 60)),
          planSmall: plans.small,
          planLarge: plans.large,
        });
      }
      ctx.log(
        `W5 rep ${rep + 1}: claim ${smallMs!.toFixed(2)} ms @${small} vs ${largeMs!.toFixed(2)} ms @${large} ` +
          `(server ${smallExec!.toFixed(3)} vs ${largeExec!.toFixed(3)} ms); drain ${(backlog / r.seconds).toFixed(0)}/s, ` +
          `peak RSS ${s.peakRssMb.toFixed(0)} MB (${s.baseRssMb.toFixed(0)} before start), heap ${s.peakHeapMb.toFixed(0)} MB` +
          (cappedMetrics.peakRssCappedMb === undefined
            ? ''
            : `; with ${SEMI_SPACE_FLAG}: ${cappedMetrics.peakRssCappedMb.toFixed(0)} MB, ${cappedMetrics.drainCappedJobsPerSec!.toFixed(0)}/s`),
      );
    } finally {
      for (const b of backlogs) {
        await b.sql.end({ timeout: 5 });
        await ctx.drop(b.name);
      }
    }
  }
  return {
    title: `W5 backlog scale: claim latency at ${small.toLocaleString('en-US')} vs ${large.toLocaleString('en-US')} pending; listener memory draining ${large.toLocaleString('en-US')}`,
    params: {
      small,
      large,
      batchSize: 50,
      drainBatchSize: VARIANTS.ours.batchSize,
      claimSamples: runs * (CLAIMS_PER_RUN - SKIP - 1),
      memorySampleMs: 100,
    },
    rows: rec.result(),
    notes,
  };
}
