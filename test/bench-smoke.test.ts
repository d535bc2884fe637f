import { describe, expect, inject, it } from 'vitest';
import { svgChart } from '../bench/chart.ts';
import { runBench } from '../bench/harness.ts';
import { QUICK, WORKLOADS } from '../bench/lib/context.ts';
import { goals, markdownReport } from '../bench/report.ts';
import { systemRuns } from '../bench/systems/index.ts';

describe('npm run bench (quick mode)', () => {
  it('runs every workload on every system, handling every job exactly once', async () => {
    const results = await runBench(
      { only: [...WORKLOADS], reps: 1, quick: true },
      { url: inject('pgAdminUrl'), log: () => {} },
    );
    const w = results.workloads;
    expect(Object.keys(w).sort()).toEqual([...WORKLOADS]);
    const value = (id: keyof typeof w, key: string, metric: string) => {
      const m = w[id]!.rows.find((r) => r.key === key)?.metrics[metric];
      expect(m, `${id} ${key} ${metric}`).toBeDefined();
      expect(Number.isFinite(m!.median), `${id} ${key} ${metric}`).toBe(true);
      return m!.median;
    };

    // W1: every system drained the whole backlog; ours handled each job exactly once.
    // The peers' current majors need Node ≥ 22 (graphile-worker 0.18, pg-boss 12): on an older Node
    // the harness skips them (saying so in `skipped`) and quick mode runs the older pins instead.
    const current = systemRuns('graphile') && systemRuns('pgboss');
    const peers = current
      ? ['graphile-batched', 'graphile-default', 'pgboss']
      : ['graphile017-batched', 'graphile017-default', 'pgboss10'];
    if (!current) expect(Object.keys(results.skipped ?? {}).sort()).toEqual(['graphile', 'pgboss']);
    const w1Keys = w.W1!.rows.map((r) => r.key);
    expect(w1Keys).toEqual(expect.arrayContaining(['ours', ...peers]));
    for (const key of w1Keys) {
      expect(value('W1', key, 'jobsPerSec')).toBeGreaterThan(0);
      expect(value('W1', key, 'handled'), key).toBe(QUICK.w1Jobs);
      expect(value('W1', key, 'distinct'), key).toBe(QUICK.w1Jobs);
      expect(value('W1', key, 'duplicates'), key).toBe(0);
      expect(value('W1', key, 'remaining'), key).toBe(0);
    }

    // W1OTEL: ours under each OpenTelemetry setup drained everything once, with ratios to "off".
    expect(w.W1OTEL!.rows.map((r) => r.key)).toEqual([
      'ours-otel-plain',
      'ours-otel-api',
      'ours-otel-sdk',
      'ours-otel-memory',
    ]);
    for (const row of w.W1OTEL!.rows) {
      expect(value('W1OTEL', row.key, 'distinct'), row.key).toBe(QUICK.w1OtelJobs);
      expect(value('W1OTEL', row.key, 'duplicates'), row.key).toBe(0);
      expect(value('W1OTEL', row.key, 'workerCpuRatio')).toBeGreaterThan(0);
    }
    expect(value('W1OTEL', 'ours-otel-plain', 'workerCpuRatio')).toBe(1);

    // W2: every system delivered every job once, with latencies.
    for (const row of w.W2!.rows) {
      expect(value('W2', row.key, 'jobs')).toBe(QUICK.w2Rate * QUICK.w2Seconds);
      expect(value('W2', row.key, 'duplicates')).toBe(0);
      expect(value('W2', row.key, 'p99Ms')).toBeGreaterThanOrEqual(value('W2', row.key, 'p50Ms'));
    }
    // Quick mode leaves W2's ordered variant out (W1 runs it).
    expect(w.W2!.rows.map((r) => r.key)).toEqual(['ours', ...peers]);

    // W3: numbers for every system and the control.
    for (const key of ['ours', ...peers, 'control']) {
      expect(value('W3', key, 'xacts')).toBeGreaterThanOrEqual(0);
      expect(value('W3', key, 'cpuMs')).toBeGreaterThanOrEqual(0);
    }

    // W4: write rates and bulk times; the trigger wrote one notification per row.
    for (const key of ['plain', 'trigger', 'trigger-nolistener'])
      expect(value('W4', key, 'tps')).toBeGreaterThan(0);
    expect(value('W4', 'bulk-plain', 'notifications')).toBe(0);
    expect(value('W4', 'bulk-trigger', 'notifications')).toBe(QUICK.w4BulkRows);

    // W5: claim timings at both sizes, the large backlog drained exactly once.
    expect(value('W5', 'ours', 'claimMsSmall')).toBeGreaterThan(0);
    expect(value('W5', 'ours', 'claimMsLarge')).toBeGreaterThan(0);
    expect(value('W5', 'ours', 'peakRssMb')).toBeGreaterThan(0);
    expect(value('W5', 'ours', 'duplicates')).toBe(0);

    // W6: both setups drained the backlog completely, no job twice.
    for (const key of ['ours-1p', 'ours-4p']) {
      expect(value('W6', key, 'handled')).toBe(QUICK.w6Jobs);
      expect(value('W6', key, 'remaining')).toBe(0);
      expect(value('W6', key, 'duplicates')).toBe(0);
    }

    // W7: every delayed job handled once, none before it was due.
    expect(w.W7!.rows.map((r) => r.key)).toEqual(expect.arrayContaining(['ours', peers[0]!]));
    for (const row of w.W7!.rows) {
      expect(value('W7', row.key, 'handled'), row.key).toBe(QUICK.w7Jobs);
      expect(value('W7', row.key, 'duplicates'), row.key).toBe(0);
      expect(value('W7', row.key, 'early'), row.key).toBe(0);
    }

    // W8: dedup kept at most one job per key (pg-boss 10's `stately` allows one queued plus one
    // active), and exactly the created jobs were handled, once each.
    for (const row of w.W8!.rows) {
      expect(value('W8', row.key, 'sends'), row.key).toBe(QUICK.w8Producers * QUICK.w8Sends);
      expect(value('W8', row.key, 'created'), row.key).toBeGreaterThanOrEqual(QUICK.w8Keys);
      expect(value('W8', row.key, 'handled'), row.key).toBe(value('W8', row.key, 'created'));
      expect(value('W8', row.key, 'missing'), row.key).toBe(0);
      expect(value('W8', row.key, 'unexpected'), row.key).toBe(0);
      expect(value('W8', row.key, 'duplicates'), row.key).toBe(0);
      expect(value('W8', row.key, 'maxPendingPerKey'), row.key).toBeLessThanOrEqual(
        row.key === 'pgboss10' ? 2 : 1,
      );
    }

    // The report and chart render from these results.
    expect(goals(results).every((g) => g.measured !== undefined)).toBe(true);
    expect(markdownReport(results, 'x.json')).toContain('### Goals');
    expect(svgChart(results)).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
  }, 240_000);
});
