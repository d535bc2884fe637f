/**
 * W2 with the run's own traces (issue #18): where do the slowest 1 % of jobs wait? Runs W2 for ours
 * (200 jobs/s for 10 s after 50 warm-up jobs, producer and listener in this process, concurrency 10)
 * and records, on one clock: per job the producer's send and COMMIT acknowledgement and the handler
 * start; the NOTIFYs received; every claim (sent, rows locked, committed, whether it started from
 * the head); every idle episode (flag+probe, waits for in-progress producers); GC pauses
 * (PerformanceObserver 'gc'). Then it classifies each job slower than the p99 by what it overlapped.
 * Not part of `npm run bench`; run it by hand:
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node --import jiti/register bench/w2-trace.ts [--reps 3]
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { createListener, notify } from '../src/index.ts';
import { IdleProtocol } from '../src/runtime/idle.ts';
import { Scheduler } from '../src/runtime/scheduler.ts';
import { percentiles } from './lib/stats.ts';
import { noop, ours } from './systems/ours.ts';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const REPS = Number(arg('reps', '1'));
const RATE = Number(arg('rate', '200'));
const SECONDS = Number(arg('seconds', '10'));
const WARMUP = 50;
const now = () => performance.now();

type Span = { start: number; end: number; kind: string; detail?: string };
const spans: Span[] = [];
const notifies: number[] = [];

// Claims: Scheduler.claimOnce(state, window, onClaimed, leased).
const S = Scheduler.prototype as any;
const claimOnce = S.claimOnce;
S.claimOnce = async function (this: any, state: any, window: any, onClaimed: any, leased: any) {
  const span: Span = { start: now(), end: 0, kind: window.after === null ? 'claim-head' : 'claim-after' };
  let lockedAt = 0;
  let count = -1;
  const wrapped = (n: number, last: unknown) => {
    lockedAt = now();
    count = n;
    onClaimed?.(n, last);
  };
  try {
    return await claimOnce.call(this, state, window, wrapped, leased);
  } finally {
    span.end = now();
    span.detail = `n=${count} locked+${(lockedAt - span.start).toFixed(2)}`;
    spans.push(span);
  }
};
const I = IdleProtocol.prototype as any;
const goIdle = I.goIdle;
I.goIdle = async function (this: any, name: string, busy: () => boolean) {
  const span: Span = { start: now(), end: 0, kind: 'idle' };
  const sqlProto = Object.getPrototypeOf(this.sql);
  if (!sqlProto.__traced) {
    sqlProto.__traced = true;
    const waitFor = sqlProto.waitFor;
    sqlProto.waitFor = async function (this: any, ...args: any[]) {
      const s: Span = { start: now(), end: 0, kind: 'xid-wait', detail: `xids=${args[1].length}` };
      try {
        const r = await waitFor.apply(this, args);
        s.detail += ` -> ${r}`;
        return r;
      } finally {
        s.end = now();
        spans.push(s);
      }
    };
    const probe = sqlProto.probe;
    sqlProto.probe = async function (this: any, ...args: any[]) {
      const s: Span = { start: now(), end: 0, kind: 'probe' };
      try {
        const r = await probe.apply(this, args);
        s.detail = `ready=${r[0]?.ready} inProgress=${r[0]?.inProgress.length}`;
        return r;
      } finally {
        s.end = now();
        spans.push(s);
      }
    };
    const setIdleAndProbe = sqlProto.setIdleAndProbe;
    sqlProto.setIdleAndProbe = async function (this: any, ...args: any[]) {
      const s: Span = { start: now(), end: 0, kind: 'flag+probe' };
      try {
        const r = await setIdleAndProbe.apply(this, args);
        s.detail = `ready=${r?.ready} inProgress=${r?.inProgress.length}`;
        return r;
      } finally {
        s.end = now();
        spans.push(s);
      }
    };
  }
  try {
    const r = await goIdle.call(this, name, busy);
    span.detail = r === undefined ? 'busy' : r.ready ? 'ready' : 'sleep';
    return r;
  } finally {
    span.end = now();
    spans.push(span);
  }
};
const hint = S.hint;
S.hint = function (this: any, name: string) {
  notifies.push(now());
  return hint.call(this, name);
};
const gcs: Span[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const start = e.startTime;
    gcs.push({ start, end: start + e.duration, kind: 'gc', detail: String((e as any).detail?.kind ?? '') });
  }
}).observe({ entryTypes: ['gc'] });

async function run(rep: number) {
  const adminUrl = process.env.DATABASE_URL!;
  const name = `perf_w2trace_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name}`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  await ours.install(url);
  spans.length = 0;
  notifies.length = 0;
  gcs.length = 0;
  const total = WARMUP + RATE * SECONDS;
  const sent = new Float64Array(total + 1);
  const acked = new Float64Array(total + 1);
  const started = new Float64Array(total + 1);
  let handled = 0;
  const wsql = postgres(url, { max: 11, onnotice: () => {} });
  const listener = createListener(drizzle({ client: wsql }), { concurrency: 10 }).on(noop, ({ payload }) => {
    if (started[payload.i] === 0) started[payload.i] = now();
    handled++;
  });
  await listener.start();
  const psql = postgres(url, { max: 8, onnotice: () => {} });
  const pdb = drizzle({ client: psql });
  await new Promise((r) => setTimeout(r, 500));
  const t0 = now() + 5;
  const sends: Promise<void>[] = [];
  for (let k = 1; k <= total; k++) {
    const wait = t0 + ((k - 1) * 1000) / RATE - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sent[k] = now();
    sends.push(
      pdb
        .transaction((tx) => notify(tx, noop, { i: k }))
        .then(() => {
          acked[k] = now();
        }),
    );
  }
  await Promise.all(sends);
  const deadline = now() + 30_000;
  while (handled < total && now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await listener.stop({ timeoutMs: 5000 });
  await wsql.end({ timeout: 5 });
  await psql.end({ timeout: 5 });
  await admin.unsafe(`DROP DATABASE ${name} WITH (FORCE)`);
  await admin.end();

  const jobs = [];
  for (let k = WARMUP + 1; k <= total; k++)
    jobs.push({ k, lat: started[k]! - acked[k]!, commit: acked[k]! - sent[k]! });
  const lats = jobs.map((j) => j.lat);
  const [p50, p90, p99, max] = percentiles(lats, [0.5, 0.9, 0.99, 1]);
  const [c50, c99] = percentiles(
    jobs.map((j) => j.commit),
    [0.5, 0.99],
  );
  console.log(
    `rep ${rep + 1}: p50 ${p50!.toFixed(2)} p90 ${p90!.toFixed(2)} p99 ${p99!.toFixed(2)} max ${max!.toFixed(2)} ms; producer commit p50 ${c50!.toFixed(2)} p99 ${c99!.toFixed(2)}; load ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`,
  );
  // Classify the slowest jobs: what was going on between the commit ack (minus the commit's own
  // duration: the row may be visible a little before the ack) and the handler start.
  const slow = jobs.filter((j) => j.lat >= p99!).sort((a, b) => b.lat - a.lat);
  const counts: Record<string, number> = {};
  for (const j of slow) {
    const from = sent[j.k]!;
    const ack = acked[j.k]!;
    const to = started[j.k]!;
    const over = (s: Span) => s.start < to && s.end > from;
    const seen = [...spans, ...gcs].filter(over).sort((a, b) => a.start - b.start);
    const gotNotify = notifies.some((t) => t >= from && t <= to);
    // The claim that took it: the last claim that started before the handler start.
    const claim = spans.filter((s) => s.kind.startsWith('claim') && s.start <= to).at(-1);
    const inflightAtAck = spans.some((s) => s.kind.startsWith('claim') && s.start < ack && s.end > ack);
    const gcMs = gcs.filter(over).reduce((a, g) => a + Math.min(g.end, to) - Math.max(g.start, from), 0);
    const waited = spans.some((s) => s.kind === 'xid-wait' && s.start < to && s.end > from);
    const cls =
      gcMs > 1
        ? 'gc'
        : waited
          ? 'xid-wait (probe saw a producer in progress)'
          : !gotNotify && inflightAtAck
            ? 'no NOTIFY: committed while a claim was in flight (flag clear), found by the next claim/probe'
            : gotNotify && inflightAtAck
              ? 'NOTIFY during an in-flight claim: waited for it to finish'
              : gotNotify
                ? 'NOTIFY, listener idle'
                : 'other';
    counts[cls] = (counts[cls] ?? 0) + 1;
    if (process.argv.includes('--verbose') && slow.indexOf(j) < 6) {
      console.log(
        `  job ${j.k}: ${j.lat.toFixed(2)} ms after ack (commit took ${j.commit.toFixed(2)}); notify ${gotNotify}; claim ${claim?.kind} ${claim?.detail} at ack+${claim ? (claim.start - ack).toFixed(2) : '-'}`,
      );
      for (const s of seen)
        console.log(
          `    ${s.kind.padEnd(11)} ${(s.start - ack).toFixed(2).padStart(7)} .. ${(s.end - ack).toFixed(2).padStart(7)} ${s.detail ?? ''}`,
        );
      for (const t of notifies.filter((t) => t >= from && t <= to))
        console.log(`    notify      ${(t - ack).toFixed(2).padStart(7)}`);
    }
  }
  console.log(`  slowest ${slow.length} (>= p99):`, JSON.stringify(counts));
  // Every job by how it was found: what the claim that took it followed.
  const byPath: Record<string, number[]> = {};
  for (const j of jobs) {
    const to = started[j.k]!;
    const ack = acked[j.k]!;
    const claim = spans.filter((s) => s.kind.startsWith('claim') && s.start <= to).at(-1);
    if (!claim) continue;
    const before = [...spans, { start: 0, end: 0, kind: 'notify' }]
      .filter(
        (s) =>
          !s.kind.startsWith('claim') &&
          s.kind !== 'idle' &&
          s.end <= claim.start + 0.05 &&
          s.end >= claim.start - 0.5,
      )
      .at(-1);
    const notified = notifies.some((t) => t >= claim.start - 0.3 && t <= claim.start + 0.05);
    const path = notified
      ? 'claim on NOTIFY'
      : before?.kind === 'xid-wait'
        ? 'claim after xid-wait'
        : before?.kind === 'flag+probe' || before?.kind === 'probe'
          ? 'claim after probe'
          : claim.start < ack
            ? 'claim already running at ack'
            : 'claim after claim';
    byPath[path] ??= [];
    byPath[path].push(j.lat);
  }
  for (const [path, l] of Object.entries(byPath)) {
    const [a, b] = percentiles(l, [0.5, 0.99]);
    console.log(
      `  ${path.padEnd(30)} ${String(l.length).padStart(5)} jobs  p50 ${a!.toFixed(2)}  p99 ${b!.toFixed(2)} ms`,
    );
  }
  const gcTotal = gcs.reduce((a, g) => a + g.end - g.start, 0);
  console.log(
    `  gc: ${gcs.length} pauses, ${gcTotal.toFixed(1)} ms total, max ${Math.max(0, ...gcs.map((g) => g.end - g.start)).toFixed(2)} ms; notifies ${notifies.length}; claims ${spans.filter((s) => s.kind.startsWith('claim')).length}; xid-waits ${spans.filter((s) => s.kind === 'xid-wait').length}`,
  );
}

for (let rep = 0; rep < REPS; rep++) await run(rep);
