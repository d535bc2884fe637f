/**
 * Scale-out estimate (issue #18, docs/scaling.md): what one claimed job costs the database as the
 * number of concurrent claimers grows, what a skipped (locked) row costs a claim, and what the
 * wake-up path costs per NOTIFY. Uses the library's own claim statement (claimSql) and DELETE.
 * CPU is read per backend from /proc (only this script's backends: other work on the server is not
 * counted), so the server must run on this machine. Not part of `npm run bench`:
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node --import jiti/register bench/scale-claim.ts
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import postgres from 'postgres';
import { claimSql, DEFAULT_BATCH_BYTES } from '../src/runtime/claim-sql.ts';
import { analyze } from './lib/pg.ts';
import { bulkInsertSql, ours } from './systems/ours.ts';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const CLAIMERS = arg('claimers', '1,2,4,8,16').split(',').map(Number);
const BATCH = Number(arg('batch', '100'));
const JOBS_PER_RUN = Number(arg('jobs', '60000'));
const TABLE = '"pgpubsub"."notifications"';
const TICK_MS = 1000 / 100; // USER_HZ

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS; // utime + stime
}
async function backendPid(sql: postgres.Sql): Promise<number> {
  const [r] = await sql`SELECT pg_backend_pid() AS pid`;
  return r!.pid as number;
}
const claim = claimSql(
  { decoder: undefined } as never,
  TABLE,
  false,
  { limit: BATCH, after: null },
  DEFAULT_BATCH_BYTES,
);

async function database(adminUrl: string, name: string): Promise<string> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name}`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  await ours.install(u.toString());
  return u.toString();
}

/** N claimers, each on its own connection, claim (from the head) and delete until `jobs` are done. */
async function claimers(url: string, n: number, jobs: number) {
  const conns = Array.from({ length: n }, () => postgres(url, { max: 1, onnotice: () => {} }));
  const pids = await Promise.all(conns.map(backendPid));
  // Warm up: prepare the statements on every connection.
  const cpu0 = pids.map(cpuMs);
  let done = 0;
  let claims = 0;
  let claimMs = 0;
  const t0 = performance.now();
  await Promise.all(
    conns.map(async (sql) => {
      while (done < jobs) {
        const reserved = await sql.reserve();
        try {
          reserved
            .unsafe('BEGIN ISOLATION LEVEL READ COMMITTED')
            .execute()
            .catch(() => {});
          const c0 = performance.now();
          const rows = await reserved.unsafe(claim, ['noop'], { prepare: true }).values();
          claimMs += performance.now() - c0;
          claims++;
          const ids = rows.map((r) => r[0] as string);
          if (ids.length === 0) {
            await reserved.unsafe('COMMIT');
            break;
          }
          await Promise.all([
            reserved
              .unsafe(`DELETE FROM ${TABLE} WHERE "id" = ANY($1::bigint[])`, [`{${ids.join(',')}}`], {
                prepare: true,
              })
              .execute(),
            reserved.unsafe('COMMIT').execute(),
          ]);
          done += ids.length;
        } finally {
          reserved.release();
        }
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = pids.map(cpuMs).reduce((a, c, i) => a + c - cpu0[i]!, 0);
  await Promise.all(conns.map((c) => c.end({ timeout: 2 })));
  return {
    claimers: n,
    jobs: done,
    jobsPerS: Math.round(done / (wallMs / 1000)),
    backendCpuUsPerJob: Math.round((cpu * 1000) / done),
    claimRoundTripMs: +(claimMs / claims).toFixed(3),
    rowsPerClaim: +(done / claims).toFixed(1),
    load: loadavg()[0]!.toFixed(1),
  };
}

/** A claim's execution time (EXPLAIN ANALYZE) while another transaction holds the first `k` rows. */
async function skipCost(url: string, ks: number[]) {
  const holder = postgres(url, { max: 1, onnotice: () => {} });
  const prober = postgres(url, { max: 1, onnotice: () => {} });
  const out = [];
  for (const k of ks) {
    const h = await holder.reserve();
    await h.unsafe('BEGIN');
    if (k > 0)
      await h.unsafe(
        `SELECT "id" FROM ${TABLE} WHERE "status" = 'pending' ORDER BY "run_at", "id" LIMIT ${k} FOR UPDATE`,
      );
    const times: number[] = [];
    for (let i = 0; i < 15; i++) {
      const p = await prober.reserve();
      await p.unsafe('BEGIN');
      const plan = await p.unsafe(`EXPLAIN (ANALYZE, FORMAT JSON) ${claim.replaceAll('$1', "'noop'")}`);
      await p.unsafe('ROLLBACK');
      p.release();
      times.push((plan[0]!['QUERY PLAN'] as { 'Execution Time': number }[])[0]!['Execution Time']);
    }
    await h.unsafe('ROLLBACK');
    h.release();
    times.sort((a, b) => a - b);
    out.push({ lockedByOthers: k, claimMsMin: +times[0]!.toFixed(3), claimMsMedian: +times[7]!.toFixed(3) });
  }
  await holder.end();
  await prober.end();
  return out;
}

/** What a producer's transaction costs with and without a NOTIFY at commit (one client, in a loop). */
async function notifyCost(url: string, n: number) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  await sql.unsafe('CREATE TABLE IF NOT EXISTS scale_t (id bigserial PRIMARY KEY, v int)');
  const pid = await backendPid(sql);
  const out: Record<string, { txPerS: number; backendCpuUs: number }> = {};
  for (const mode of ['plain', 'notify', 'plain', 'notify']) {
    const c0 = cpuMs(pid);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      await sql.begin(async (tx) => {
        await tx.unsafe('INSERT INTO scale_t (v) VALUES ($1)', [i], { prepare: true });
        if (mode === 'notify')
          await tx.unsafe(`SELECT pg_notify('scale_wake', 'noop')`, [], { prepare: true });
      });
    }
    const ms = performance.now() - t0;
    const r = {
      txPerS: Math.round(n / (ms / 1000)),
      backendCpuUs: Math.round(((cpuMs(pid) - c0) * 1000) / n),
    };
    const prev = out[mode];
    out[mode] = prev && prev.backendCpuUs <= r.backendCpuUs ? prev : r; // the quieter of two runs
  }
  await sql.end();
  return out;
}

const adminUrl = process.env.DATABASE_URL!;
const url = await database(adminUrl, `perf_scale_${process.pid}`);
try {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const total = JOBS_PER_RUN * CLAIMERS.length + 20_000;
  await sql.unsafe(bulkInsertSql(1, total));
  await analyze(url);
  console.log(JSON.stringify({ backlog: total, batch: BATCH, load: loadavg()[0]!.toFixed(1) }));
  console.log(JSON.stringify({ skip: await skipCost(url, [0, 100, 1000, 4000, 10000]) }));
  for (const n of CLAIMERS) console.log(JSON.stringify(await claimers(url, n, JOBS_PER_RUN)));
  console.log(JSON.stringify({ notify: await notifyCost(url, 2000) }));
  await sql.end();
} finally {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS perf_scale_${process.pid} WITH (FORCE)`);
  await admin.end();
}
