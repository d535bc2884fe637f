/**
 * What OpenTelemetry instrumentation costs the listener, in one process per setup (issue #19):
 * `node --import jiti/register bench/otel-cost.ts [--jobs N] [--reps N] [--modes plain,api,sdk,memory]`
 * with `DATABASE_URL` set. Each repetition runs every setup (rotated order) in a fresh process on a
 * fresh database: enqueue N no-op notifications, then drain them with one started listener
 * (concurrency 10, batch 100), timing the drain and the process's CPU. Prints medians and ratios to
 * `plain`. `--child <mode>` is the measured process (internal); `OTEL_COST_PROFILE=<prefix>` writes a
 * CPU profile of each drain. `--src before=<dir>` adds the setups run on another copy of src/ (e.g. a
 * `git archive` of an older commit), interleaved with this one: a before/after under the same load.
 * `--together` drains every setup of a repetition at the same time (each in its own process, after
 * all have enqueued), so that they share whatever else loads the machine.
 */
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import { withDatabase } from '../tools/embedded-pg.ts';
import { type OtelMode, registerOtel } from './lib/otel.ts';
import { rotate, summarize } from './lib/stats.ts';

async function child(
  mode: OtelMode,
  jobs: number,
  adminUrl: string,
  src: string,
  together: boolean,
): Promise<void> {
  const { channel, createListener, notify, storageMigrationSql } = (await import(
    `${src}/index.ts`
  )) as typeof import('../src/index.ts');
  const noop = channel('noop', v.object({ i: v.number() }));
  const name = `otel_cost_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  const url = withDatabase(adminUrl, name);
  const sql = postgres(url, { max: 11, onnotice: () => {} });
  try {
    for (const s of storageMigrationSql()) await sql.unsafe(s);
    const db = drizzle({ client: sql });
    await db.transaction((tx) =>
      notify(
        tx,
        noop,
        Array.from({ length: jobs }, (_, i) => ({ i })),
      ),
    );
    await sql`ANALYZE pgpubsub.notifications`;
    await registerOtel(mode);
    if (together) {
      // Parent's barrier: every setup of the repetition drains at the same time, under the same load.
      process.stdout.write('ready\n');
      await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
    }
    let handled = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => {
      done = r;
    });
    const listener = createListener(db, {
      concurrency: 10,
      batchSize: 100,
      ...(mode === 'plain' ? { tracing: false, metrics: false } : {}),
    }).on(noop, () => {
      if (++handled === jobs) done();
    });
    const profile = process.env.OTEL_COST_PROFILE;
    const inspector = profile ? new (await import('node:inspector/promises')).Session() : undefined;
    if (inspector) {
      inspector.connect();
      await inspector.post('Profiler.enable');
      await inspector.post('Profiler.start');
    }
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await listener.start();
    await finished;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    if (inspector) {
      const { profile: p } = await inspector.post('Profiler.stop');
      const tag = src.endsWith('/otel/src') ? '' : '-other';
      (await import('node:fs')).writeFileSync(`${profile}-${mode}${tag}.cpuprofile`, JSON.stringify(p));
    }
    await listener.stop({ timeoutMs: 5000 });
    const cpuUsPerJob = (cpu.user + cpu.system) / jobs;
    process.stdout.write(`${JSON.stringify({ mode, jobsPerSec: jobs / seconds, cpuUsPerJob })}\n`);
  } finally {
    await sql.end({ timeout: 5 });
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end({ timeout: 5 });
  }
}

type Measured = { jobsPerSec: number; cpuUsPerJob: number };

/** Runs the setups of one repetition at the same time: each enqueues, then all drain together. */
async function together(
  runs: { mode: OtelMode; src: string; key: string }[],
  jobs: number,
): Promise<Measured[]> {
  const self = fileURLToPath(import.meta.url);
  const children = runs.map(({ mode, src }) =>
    spawn(
      process.execPath,
      [...process.execArgv, self, '--child', mode, '--jobs', String(jobs), '--src', src, '--together'],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    ),
  );
  const outputs = children.map((c) => {
    let text = '';
    let ready!: () => void;
    const isReady = new Promise<void>((r) => {
      ready = r;
    });
    c.stdout.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('ready\n')) ready();
    });
    const exited = new Promise<string>((resolve, reject) =>
      c.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`child exited ${code}`)))),
    );
    return { isReady, exited };
  });
  await Promise.all(outputs.map((o) => o.isReady));
  for (const c of children) c.stdin.end('go\n');
  const texts = await Promise.all(outputs.map((o) => o.exited));
  return texts.map((t) => JSON.parse(t.trim().split('\n').at(-1)!) as Measured);
}

async function parent(
  modes: OtelMode[],
  jobs: number,
  reps: number,
  srcs: [string, string][],
  concurrent: boolean,
): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const results = new Map<string, { jobsPerSec: number[]; cpuUsPerJob: number[] }>();
  const runs = srcs.flatMap(([label, src]) =>
    modes.map((mode) => ({ mode, src, key: label === 'now' ? mode : `${mode}@${label}` })),
  );
  for (let rep = 0; rep < reps; rep++) {
    const order = rotate(runs, rep);
    const measured = concurrent
      ? await together(order, jobs)
      : order.map(({ mode, src }) => {
          const out = execFileSync(
            process.execPath,
            [...process.execArgv, self, '--child', mode, '--jobs', String(jobs), '--src', src],
            { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
          );
          return JSON.parse(out.trim().split('\n').at(-1)!) as Measured;
        });
    for (const [i, { key }] of order.entries()) {
      const r = measured[i]!;
      const entry = results.get(key) ?? { jobsPerSec: [], cpuUsPerJob: [] };
      entry.jobsPerSec.push(r.jobsPerSec);
      entry.cpuUsPerJob.push(r.cpuUsPerJob);
      results.set(key, entry);
      console.log(
        `rep ${rep + 1} ${key}: ${r.jobsPerSec.toFixed(0)} jobs/s, ${r.cpuUsPerJob.toFixed(2)} µs CPU/job`,
      );
    }
  }
  const base = results.get('plain');
  console.log(
    '\nsetup        | jobs/s (median) | CPU µs/job (median) | CPU vs plain | jobs/s vs plain (medians of per-rep ratios)',
  );
  for (const [key, r] of results) {
    const jps = summarize(r.jobsPerSec).median;
    const cpu = summarize(r.cpuUsPerJob).median;
    const ratio = (get: (x: typeof r) => number[]) =>
      base ? summarize(get(r).map((c, i) => c / get(base)[i]!)).median : Number.NaN;
    const pct = (x: number) => `${x >= 1 ? '+' : ''}${((x - 1) * 100).toFixed(1)} %`;
    console.log(
      `${key.padEnd(12)} | ${jps.toFixed(0).padStart(15)} | ${cpu.toFixed(2).padStart(19)} | ${pct(ratio((x) => x.cpuUsPerJob)).padStart(12)} | ${pct(ratio((x) => x.jobsPerSec))}`,
    );
  }
}

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    jobs: { type: 'string', default: '100000' },
    reps: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'plain,api,sdk' },
    src: { type: 'string', multiple: true },
    together: { type: 'boolean' },
  },
});
const adminUrl = process.env.DATABASE_URL;
if (!adminUrl) throw new Error('Set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres).');
if (values.child) {
  const src = values.src?.[0] ?? fileURLToPath(new URL('../src', import.meta.url));
  await child(values.child as OtelMode, Number(values.jobs), adminUrl, src, values.together === true);
  process.exit(0);
} else {
  const srcs: [string, string][] = [['now', fileURLToPath(new URL('../src', import.meta.url))]];
  for (const s of values.src ?? []) {
    const at = s.indexOf('=');
    srcs.push([s.slice(0, at), s.slice(at + 1)]);
  }
  await parent(
    values.modes!.split(',') as OtelMode[],
    Number(values.jobs),
    Number(values.reps),
    srcs,
    values.together === true,
  );
}
