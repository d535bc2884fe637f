import type { BenchResults } from './harness.ts';
import type { Summary } from './lib/stats.ts';

/** One bar: label, median and range, color key. */
interface Bar {
  label: string;
  value: Summary;
  system: string;
}

interface Panel {
  title: string;
  unit: string;
  log: boolean;
  bars: Bar[];
}

const COLORS: Record<string, string> = {
  ours: '#2563eb',
  graphile: '#ea580c',
  pgboss: '#6b7280',
  none: '#a3a3a3',
};
const WIDTH = 820;
const LABEL = 300;
const RIGHT = 110;
const ROW = 22;
const TITLE = 34;

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function short(v: number): string {
  if (v === 0) return '0';
  if (v >= 1000) return `${(v / 1000).toLocaleString('en-US', { maximumFractionDigits: 1 })}k`;
  if (v >= 10) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1);
  return v.toFixed(2);
}

/** 1, 2, 2.5 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 2.5, 5, 10].find((m) => m * power >= raw) ?? 10) * power;
}

function panelSvg(p: Panel, top: number): { svg: string; height: number } {
  const plot = WIDTH - LABEL - RIGHT;
  const max = Math.max(...p.bars.map((b) => b.value.max), 1e-9);
  // Log axes start a decade below the smallest positive value; a zero gets no bar, only its label.
  const positive = p.bars.map((b) => b.value.min).filter((v) => v > 0);
  const min = p.log ? (positive.length ? Math.min(...positive) : 1) : 0;
  const lo = p.log ? 10 ** Math.floor(Math.log10(min * 0.99)) : 0;
  const step = niceStep(max / 4);
  const hi = p.log ? 10 ** Math.ceil(Math.log10(max)) : Math.ceil((max * 1.02) / step) * step;
  const x = (v: number) => {
    if (!p.log) return LABEL + (v / hi) * plot;
    const c = Math.max(v, lo);
    return LABEL + ((Math.log10(c) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plot;
  };
  const out: string[] = [];
  out.push(
    `<text x="12" y="${top + 20}" class="t">${esc(p.title)}</text>`,
    `<text x="${WIDTH - 12}" y="${top + 20}" class="u" text-anchor="end">${esc(p.unit)}${p.log ? ' (log scale)' : ''}</text>`,
  );
  // Grid lines.
  const ticks: number[] = [];
  if (p.log) for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  else for (let t = 0; t <= hi * 1.0001; t += step) ticks.push(t);
  const bottom = top + TITLE + p.bars.length * ROW;
  for (const t of ticks) {
    out.push(
      `<line x1="${x(t).toFixed(1)}" y1="${top + TITLE - 4}" x2="${x(t).toFixed(1)}" y2="${bottom}" class="g"/>`,
      `<text x="${x(t).toFixed(1)}" y="${bottom + 12}" class="k" text-anchor="middle">${short(t)}</text>`,
    );
  }
  p.bars.forEach((b, i) => {
    const y = top + TITLE + i * ROW;
    const color = COLORS[b.system] ?? '#999';
    const w = Math.max(0, x(b.value.median) - LABEL);
    out.push(
      `<text x="${LABEL - 8}" y="${y + 14}" class="l" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${LABEL}" y="${y + 3}" width="${w.toFixed(1)}" height="${ROW - 8}" fill="${color}" rx="2"/>`,
    );
    if (b.value.max > b.value.min) {
      const cy = y + 3 + (ROW - 8) / 2;
      out.push(
        `<line x1="${x(b.value.min).toFixed(1)}" y1="${cy}" x2="${x(b.value.max).toFixed(1)}" y2="${cy}" class="r"/>`,
        `<line x1="${x(b.value.min).toFixed(1)}" y1="${cy - 4}" x2="${x(b.value.min).toFixed(1)}" y2="${cy + 4}" class="r"/>`,
        `<line x1="${x(b.value.max).toFixed(1)}" y1="${cy - 4}" x2="${x(b.value.max).toFixed(1)}" y2="${cy + 4}" class="r"/>`,
      );
    }
    const end = Math.max(x(b.value.median), x(b.value.max));
    out.push(`<text x="${(end + 6).toFixed(1)}" y="${y + 14}" class="v">${short(b.value.median)}</text>`);
  });
  return { svg: out.join('\n'), height: bottom + 24 - top };
}

function bars(
  results: BenchResults,
  workload: keyof BenchResults['workloads'],
  metric: string,
  labelOf: (label: string) => string = (l) => l,
): Bar[] {
  const w = results.workloads[workload];
  if (!w) return [];
  return w.rows
    .filter((r) => r.metrics[metric])
    .map((r) => ({ label: labelOf(r.label), value: r.metrics[metric]!, system: r.system }));
}

/** The benchmark chart (hand-built SVG): W1 throughput, W2 latency, W3 idle transactions. */
export function svgChart(results: BenchResults): string {
  const panels: Panel[] = [];
  const w1 = bars(results, 'W1', 'jobsPerSec');
  if (w1.length)
    panels.push({
      title: 'W1 drain 20k no-op jobs, 1 process, concurrency 10 (higher is better)',
      unit: 'jobs/s',
      log: false,
      bars: w1,
    });
  const cpu = bars(results, 'W1', 'cpuUsPerJob').filter((b) => Number.isFinite(b.value.median));
  if (cpu.length) {
    panels.push({
      title: 'W1 CPU per job, worker process + PostgreSQL (lower is better)',
      unit: 'µs',
      log: true,
      bars: cpu,
    });
  }
  const w2 = [
    ...bars(results, 'W2', 'p50Ms', (l) => `${l} · p50`),
    ...bars(results, 'W2', 'p99Ms', (l) => `${l} · p99`),
  ];
  if (w2.length)
    panels.push({
      title: 'W2 commit → handler start at 200 jobs/s (lower is better)',
      unit: 'ms',
      log: true,
      bars: w2,
    });
  const w3 = bars(results, 'W3', 'xacts').filter((b) => b.system !== 'none');
  if (w3.length)
    panels.push({
      title: 'W3 transactions while idle for 10 s (lower is better)',
      unit: 'transactions',
      log: true,
      bars: w3.map((b) => ({ ...b, value: { ...b.value, median: Math.max(b.value.median, 0) } })),
    });
  let top = 52;
  const body: string[] = [];
  for (const p of panels) {
    const { svg, height } = panelSvg(p, top);
    body.push(svg);
    top += height + 10;
  }
  const pg = results.server.version.split(' on ')[0];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${top + 10}" viewBox="0 0 ${WIDTH} ${top + 10}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">
<style>
.h{font-size:16px;font-weight:600;fill:#111}.t{font-size:13px;font-weight:600;fill:#222}.u{font-size:11px;fill:#555}
.l{font-size:11.5px;fill:#222}.v{font-size:11px;fill:#111}.k{font-size:10px;fill:#777}
.g{stroke:#e5e7eb;stroke-width:1}.r{stroke:#111;stroke-width:1.2}
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="12" y="22" class="h">drizzle-pgpubsub vs graphile-worker 0.17.3 vs pg-boss 10.4.2</text>
<text x="12" y="40" class="u">${esc(pg ?? '')}${results.server.embedded ? ' (embedded)' : ''}, ${results.machine.cpus} cores, ${results.date.slice(0, 10)}; bars: median, whiskers: min–max of ${results.options.reps} repetitions</text>
${body.join('\n')}
</svg>
`;
}
