import { describe, expect, it } from 'vitest';
import { runChaos } from '../chaos/chaos.ts';
import { formatReport } from '../chaos/report.ts';

// A short `npm run chaos`: its own embedded PostgreSQL (so it can restart it), 4 listener processes,
// faults every second. The full run is `npm run chaos` (20,000 notifications).
describe('chaos', () => {
  it('delivers every committed notification exactly once through kills, terminations, resets, black holes and a restart', async () => {
    const report = await runChaos({
      notifications: 1200,
      durationMs: 10_000,
      seed: 424242,
      drainTimeoutMs: 30_000,
      stopTimeoutMs: 5000,
      log: () => {},
    });
    console.log(formatReport(report));
    expect(report.violations).toEqual([]);
    expect(report.notifications).toBeGreaterThanOrEqual(1200);
    expect(report.effects).toBe(report.notifications);
    expect(report.faults.kill).toBeGreaterThanOrEqual(8);
    expect(report.faults.restart).toBe(1);
    expect(report.faults['blackhole-heal'] + report.faults['blackhole-sever']).toBe(2);
  }, 60_000);
});
