/**
 * A worker process of the benchmark (forked by bench/lib/child.ts): runs one system's worker, counts
 * handler starts per job id, samples its own memory, and answers the parent over IPC. Kept in its own
 * process so the harness never competes with it for the event loop, and so CPU and RSS are its own.
 */

import type { ChildReply, ChildRequest, NoWorker, WorkerStats } from './lib/child.ts';
import { type OtelMode, registerOtel } from './lib/otel.ts';
import { loadSystem } from './systems/index.ts';
import type { SystemId, Variant, WorkerHandle } from './systems/types.ts';

let worker: WorkerHandle | undefined;
let handled = 0;
let duplicates = 0;
let seen = new Uint8Array(0);
let peakRss = 0;
let peakHeap = 0;
let baseRss = 0;
let baseHeap = 0;
let cpuStart = process.cpuUsage();
let reportScheduled = false;
let expected = -1;

function send(message: ChildReply): void {
  process.send?.(message);
}

/** Once a second while sampling: [seconds since start, RSS MB, heap used MB]. */
const series: [number, number, number][] = [];
let sampledAt = 0;
let startedAt = 0;

function sampleMemory(): void {
  const m = process.memoryUsage();
  peakRss = Math.max(peakRss, m.rss);
  peakHeap = Math.max(peakHeap, m.heapUsed);
  const now = performance.now();
  if (now - sampledAt >= 1000) {
    sampledAt = now;
    series.push([
      Math.round(now - startedAt) / 1000,
      Math.round(m.rss / 2 ** 20),
      Math.round(m.heapUsed / 2 ** 20),
    ]);
  }
}

function onJob(i: number): void {
  handled++;
  if (i >= seen.length) {
    const grown = new Uint8Array(Math.max(i + 1, seen.length * 2));
    grown.set(seen);
    seen = grown;
  }
  if (seen[i]! > 0) duplicates++;
  seen[i] = Math.min(255, seen[i]! + 1);
  // Progress goes out at once when the expected count is reached, otherwise at most every 2 ms:
  // the IPC writes are the harness's own cost inside the measured process.
  if (handled === expected) {
    send({ type: 'progress', handled });
  } else if (!reportScheduled) {
    reportScheduled = true;
    setTimeout(() => {
      reportScheduled = false;
      send({ type: 'progress', handled });
    }, 2);
  }
}

function stats(): WorkerStats {
  let distinct = 0;
  for (const count of seen) if (count > 0) distinct++;
  const cpu = process.cpuUsage(cpuStart);
  return {
    handled,
    distinct,
    duplicates,
    peakRssMb: peakRss / 2 ** 20,
    peakHeapMb: peakHeap / 2 ** 20,
    baseRssMb: baseRss / 2 ** 20,
    baseHeapMb: baseHeap / 2 ** 20,
    cpuMs: (cpu.user + cpu.system) / 1000,
    memory: series,
  };
}

let sampler: NodeJS.Timeout | undefined;

async function handle(message: ChildRequest): Promise<void> {
  switch (message.type) {
    case 'start': {
      const variant: Variant | NoWorker = message.variant;
      expected = message.expected ?? -1;
      cpuStart = process.cpuUsage();
      startedAt = performance.now();
      const m = process.memoryUsage();
      baseRss = m.rss;
      baseHeap = m.heapUsed;
      // Sampling costs CPU too: W3 (idle CPU) turns it off with sampleMs 0.
      if (message.sampleMs !== 0) sampler = setInterval(sampleMemory, message.sampleMs ?? 100);
      const t0 = performance.now();
      if (variant.system !== 'none')
        worker = await (await loadSystem(variant.system)).startWorker(message.url, variant, onJob);
      send({ type: 'started', startMs: performance.now() - t0 });
      return;
    }
    case 'cpu': {
      if (message.reset) cpuStart = process.cpuUsage();
      const cpu = process.cpuUsage(cpuStart);
      send({ type: 'cpu', cpuMs: (cpu.user + cpu.system) / 1000 });
      return;
    }
    case 'stats':
      sampleMemory();
      send({ type: 'stats', stats: stats() });
      return;
    case 'stop': {
      clearInterval(sampler);
      sampleMemory();
      const result = stats();
      await worker?.stop();
      send({ type: 'stopped', stats: result });
      process.disconnect?.();
      return;
    }
  }
}

// The system's libraries are loaded before `ready`, so start() timings do not include module loading.
// W1OTEL sets BENCH_OTEL: OpenTelemetry is registered first, as an application's tracing setup is.
const preload = process.env.BENCH_SYSTEM as SystemId | undefined;
const otel = process.env.BENCH_OTEL as OtelMode | undefined;
const system = (otel ? registerOtel(otel) : Promise.resolve()).then(() =>
  preload ? loadSystem(preload) : undefined,
);

process.on('message', (message: ChildRequest) => {
  handle(message).catch((error) => {
    send({ type: 'error', message: String(error?.stack ?? error) });
  });
});
system.then(
  () => send({ type: 'ready' }),
  (error) => send({ type: 'error', message: String(error?.stack ?? error) }),
);
