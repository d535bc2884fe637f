import os from 'node:os';
import { startPg } from '../tools/embedded-pg.ts';
import { removeWorkerBuild, workerBuild } from './lib/build.ts';
import {
  type BenchContext,
  type BenchOptions,
  FULL,
  QUICK,
  type WorkloadId,
  type WorkloadResult,
} from './lib/context.ts';
import { adminClient, Databases, dropTemplate, makeTemplate, type ServerInfo, serverInfo } from './lib/pg.ts';
import { loadSystem, SYSTEM_IDS, systemRuns } from './systems/index.ts';
import type { SystemId, Variant } from './systems/types.ts';
import { w1 } from './workloads/w1.ts';
import { w1otel } from './workloads/w1otel.ts';
import { w2 } from './workloads/w2.ts';
import { w3 } from './workloads/w3.ts';
import { w4 } from './workloads/w4.ts';
import { w5 } from './workloads/w5.ts';
import { w6 } from './workloads/w6.ts';
import { w7 } from './workloads/w7.ts';
import { w8 } from './workloads/w8.ts';

/** Everything one `npm run bench` produced: the raw JSON written under bench/results/. */
export interface BenchResults {
  date: string;
  server: ServerInfo & { embedded: boolean };
  machine: { cpus: number; cpuModel: string; memoryGb: number; os: string; node: string };
  options: BenchOptions;
  durationSeconds: number;
  /** os.loadavg() (1, 5, 15 min) when the run started and ended: other load on the machine skews everything. */
  load: { start: number[]; end: number[] };
  workloads: Partial<Record<WorkloadId, WorkloadResult>>;
  /** Systems this run left out, with why (e.g. a peer that needs a newer Node.js). */
  skipped?: Partial<Record<SystemId, string>>;
}

const RUNNERS: Record<WorkloadId, ((ctx: BenchContext) => Promise<WorkloadResult>) | undefined> = {
  W1: w1,
  W1OTEL: w1otel,
  W2: w2,
  W3: w3,
  W4: w4,
  W5: w5,
  W6: w6,
  W7: w7,
  W8: w8,
};

/**
 * Runs the selected workloads against `DATABASE_URL` (or an embedded PostgreSQL 18) and returns the
 * results. Every measurement runs on a database cloned from a freshly migrated template.
 */
export async function runBench(
  options: BenchOptions,
  {
    url = process.env.DATABASE_URL,
    log = (m: string) => console.log(m),
  }: { url?: string | undefined; log?: (m: string) => void } = {},
): Promise<BenchResults> {
  const started = performance.now();
  const loadStart = os.loadavg();
  const server = await startPg(url, {});
  const admin = adminClient(server.url);
  const templates: Partial<Record<SystemId, string>> = {};
  let databases: Databases | undefined;
  try {
    const info = await serverInfo(admin);
    log(`PostgreSQL: ${info.version}${server.embedded ? ' (embedded)' : ''}; Node ${process.version}`);
    const skipped: Partial<Record<SystemId, string>> = {};
    for (const id of SYSTEM_IDS) {
      if (!systemRuns(id)) {
        skipped[id] = `needs a newer Node.js than ${process.version} (its engines field)`;
        log(`Skipping ${id}: ${skipped[id]}`);
      }
    }
    const runs = (id: SystemId | 'none') => id === 'none' || !skipped[id];
    // One after another: on Node 24, two graphile-worker versions importing the same CommonJS
    // dependency (cosmiconfig) concurrently fail with ERR_REQUIRE_ASYNC_MODULE.
    for (const id of SYSTEM_IDS.filter(runs)) await loadSystem(id);
    await Promise.all([
      workerBuild(),
      ...SYSTEM_IDS.filter(runs).map(async (id) => {
        const name = `bench_tpl_${id}_${process.pid}`;
        const system = await loadSystem(id);
        await makeTemplate(admin, server.url, name, (u) => system.install(u));
        templates[id] = name;
      }),
    ]);
    databases = new Databases(admin, server.url, options.quick);
    const dbs = databases;
    const ctx: BenchContext = {
      adminUrl: server.url,
      admin,
      fresh: (system) => dbs.fresh(templates[system]!),
      drop: (name) => dbs.drop(name),
      options,
      sizes: options.quick ? QUICK : FULL,
      template: (id) => templates[id]!,
      log,
      skipped,
      pick: (variants) =>
        variants.filter((v) => {
          if (!runs(v.system)) return false;
          const replaces = (v as Partial<Variant>).replaces;
          return !(options.quick && replaces && runs(replaces));
        }),
    };
    const workloads: BenchResults['workloads'] = {};
    for (const id of options.only) {
      const runner = RUNNERS[id];
      if (!runner) continue;
      const t = performance.now();
      log(`${id}…`);
      const load = os.loadavg();
      workloads[id] = await runner(ctx);
      workloads[id].params.loadAverage = { start: load, end: os.loadavg() };
      log(`${id} done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    }
    const cpus = os.cpus();
    return {
      date: new Date().toISOString(),
      server: { ...info, embedded: server.embedded },
      machine: {
        cpus: cpus.length,
        cpuModel: cpus[0]?.model.trim() ?? 'unknown',
        memoryGb: Math.round(os.totalmem() / 2 ** 30),
        os: `${os.type()} ${os.release()}`,
        node: process.version,
      },
      options,
      durationSeconds: (performance.now() - started) / 1000,
      load: { start: loadStart, end: os.loadavg() },
      workloads,
      skipped,
    };
  } finally {
    await databases?.close();
    await removeWorkerBuild();
    for (const name of Object.values(templates)) await dropTemplate(admin, name).catch(() => {});
    await admin.end({ timeout: 5 });
    await server.stop();
  }
}
