/**
 * What OpenTelemetry instrumentation costs the listener, in one process per setup (issue #19):
 * `node --import jiti/register bench/otel-cost.ts [--jobs N] [--reps N] [--modes plain,api,sdk,memory]`
 * with `DATABASE_URL` set. Each repetition runs every setup (rotated order) in a fresh process on a
 * fresh database: enqueue N no-op notifications, then drain them with one started listener
 * (concurrency 10, batch 100), timing the drain and the process's CPU. Prints medians and ratios to
 * `plain`. `--child <mode>` is the measured process (internal). `--cpu-prof` in NODE_OPTIONS profiles it.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import { withDatabase } from '../tools/embedded-pg.ts';
import { rotate, summarize } from './lib/stats.ts';

/** The setups measured: see {@link registerOtel}. */
export const OTEL_MODES = ['plain', 'api', 'sdk', 'memory'] as const;
export type OtelMode = (typeof OTEL_MODES)[number];

/**
 * Registers OpenTelemetry globally as the setup says, before the listener starts:
 * `plain`: nothing (the listener gets `tracing: false, metrics: false`); `api`: nothing (the
 * installed API's no-op providers, the default for a user without an SDK); `sdk`: an SDK tracer
 * provider, context manager and meter provider with no span processor, exporter or reader;
 * `memory`: the same with an in-memory span exporter and a metric reader nobody collects.
 */
export async function registerOtel(mode: OtelMode): Promise<void> {
  if (mode === 'plain' || mode === 'api') return;
  const { context, metrics, trace } = await import('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import(
    '@opentelemetry/sdk-trace-base'
  );
  const { MeterProvider, MetricReader } = await import('@opentelemetry/sdk-metrics');
  class Reader extends MetricReader {
    protected async onForceFlush(): Promise<void> {}
    protected async onShutdown(): Promise<void> {}
  }
  const memory = mode === 'memory';
  const exporter = new InMemorySpanExporter();
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider(memory ? { spanProcessors: [new SimpleSpanProcessor(exporter)] } : {}),
  );
  metrics.setGlobalMeterProvider(new MeterProvider(memory ? { readers: [new Reader()] } : {}));
  if (memory) setInterval(() => exporter.reset(), 200).unref();
}

async function child(mode: OtelMode, jobs: number, adminUrl: string): Promise<void> {
  const { channel, createListener, notify, storageMigrationSql } = await import('../src/index.ts');
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
      (await import('node:fs')).writeFileSync(`${profile}-${mode}.cpuprofile`, JSON.stringify(p));
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

function parent(modes: OtelMode[], jobs: number, reps: number): void {
  const self = fileURLToPath(import.meta.url);
  const results = new Map<OtelMode, { jobsPerSec: number[]; cpuUsPerJob: number[] }>();
  for (let rep = 0; rep < reps; rep++) {
    for (const mode of rotate(modes, rep)) {
      const out = execFileSync(
        process.execPath,
        [...process.execArgv, self, '--child', mode, '--jobs', String(jobs)],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const r = JSON.parse(out.trim().split('\n').at(-1)!) as { jobsPerSec: number; cpuUsPerJob: number };
      const entry = results.get(mode) ?? { jobsPerSec: [], cpuUsPerJob: [] };
      entry.jobsPerSec.push(r.jobsPerSec);
      entry.cpuUsPerJob.push(r.cpuUsPerJob);
      results.set(mode, entry);
      console.log(
        `rep ${rep + 1} ${mode}: ${r.jobsPerSec.toFixed(0)} jobs/s, ${r.cpuUsPerJob.toFixed(2)} µs CPU/job`,
      );
    }
  }
  const base = results.get('plain');
  console.log('\nsetup  | jobs/s (median) | CPU µs/job (median) | CPU vs plain (median of per-rep ratios)');
  for (const [mode, r] of results) {
    const jps = summarize(r.jobsPerSec).median;
    const cpu = summarize(r.cpuUsPerJob).median;
    const ratio = base ? summarize(r.cpuUsPerJob.map((c, i) => c / base.cpuUsPerJob[i]!)).median : Number.NaN;
    console.log(
      `${mode.padEnd(6)} | ${jps.toFixed(0).padStart(15)} | ${cpu.toFixed(2).padStart(19)} | ${((ratio - 1) * 100).toFixed(1)} %`,
    );
  }
}

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    jobs: { type: 'string', default: '100000' },
    reps: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'plain,api,sdk' },
  },
});
const adminUrl = process.env.DATABASE_URL;
if (!adminUrl) throw new Error('Set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres).');
if (values.child) {
  await child(values.child as OtelMode, Number(values.jobs), adminUrl);
  process.exit(0);
} else {
  parent(values.modes!.split(',') as OtelMode[], Number(values.jobs), Number(values.reps));
}
