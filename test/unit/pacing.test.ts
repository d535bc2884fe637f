import { describe, expect, it } from 'vitest';
import { MAX_SUBTRANSACTIONS } from '../../src/runtime/claim-sql.ts';
import type { ClaimOutcome } from '../../src/runtime/claim-types.ts';
import { waitDelayMs } from '../../src/runtime/idle.ts';
import {
  BATCH_TARGET_MS,
  batchLimit,
  errorBackoffMs,
  isAfter,
  isLead,
  LEAD_INTERVAL_MS,
  learn,
} from '../../src/runtime/pacing.ts';

const outcome = (durations: number[], extra: Partial<ClaimOutcome> = {}): ClaimOutcome =>
  ({
    claimed: durations.length,
    processed: durations.map((durationMs, i) => ({ id: String(i), durationMs })),
    released: 0,
    subtransactions: 0,
    ...extra,
  }) as unknown as ClaimOutcome;

describe('pacing', () => {
  it('batchLimit: one at a time in careful mode, the subtransaction budget for writers, ~200 ms of work', () => {
    const base = { careful: 0, writeLimited: false, avgMs: undefined };
    expect(batchLimit(base, 100)).toBe(100);
    expect(batchLimit({ ...base, careful: 3 }, 100)).toBe(1);
    expect(batchLimit({ ...base, writeLimited: true }, 100)).toBe(MAX_SUBTRANSACTIONS);
    expect(batchLimit({ ...base, avgMs: 20 }, 100)).toBe(BATCH_TARGET_MS / 20);
    expect(batchLimit({ ...base, avgMs: 10_000 }, 100)).toBe(1);
  });

  it('learn: a moving average of handler durations; writers are limited', () => {
    const state = { writeLimited: false, avgMs: undefined as number | undefined };
    learn(state, outcome([10, 30]));
    expect(state.avgMs).toBe(20);
    learn(state, outcome([120]));
    expect(state.avgMs).toBeCloseTo(20 * 0.7 + 120 * 0.3);
    learn(state, outcome([], { subtransactions: MAX_SUBTRANSACTIONS / 2 }));
    expect(state.writeLimited).toBe(true);
    learn(state, outcome([1]));
    expect(state.writeLimited).toBe(false);
  });

  it('isLead: the only claim, careful mode, no frontier or a stale lead start from the head', () => {
    const busy = {
      inflight: 2,
      careful: 0,
      needLead: false,
      frontier: { runAtUs: '1', id: '1' },
      leadAt: 1000,
    };
    expect(isLead(busy, 1500)).toBe(false);
    expect(isLead({ ...busy, inflight: 1 }, 1500)).toBe(true);
    expect(isLead({ ...busy, careful: 1 }, 1500)).toBe(true);
    expect(isLead({ ...busy, needLead: true }, 1500)).toBe(true);
    expect(isLead({ ...busy, frontier: null }, 1500)).toBe(true);
    expect(isLead(busy, 1000 + LEAD_INTERVAL_MS)).toBe(true);
  });

  it('isAfter orders cursors by run_at, then id, as bigints', () => {
    expect(isAfter({ runAtUs: '2', id: '1' }, { runAtUs: '1', id: '9' })).toBe(true);
    expect(isAfter({ runAtUs: '1', id: '10' }, { runAtUs: '1', id: '9' })).toBe(true);
    expect(isAfter({ runAtUs: '1', id: '9' }, { runAtUs: '1', id: '9' })).toBe(false);
    expect(isAfter({ runAtUs: '9007199254740993', id: '1' }, { runAtUs: '9007199254740992', id: '1' })).toBe(
      true,
    );
  });

  it('errorBackoffMs doubles from 100 ms up to 30 s', () => {
    expect([1, 2, 3].map(errorBackoffMs)).toEqual([100, 200, 400]);
    expect(errorBackoffMs(50)).toBe(30_000);
  });
});

describe('waitDelayMs (checks of producers in progress when a channel goes idle)', () => {
  it('checks every millisecond three times, then backs off to 50 ms', () => {
    expect(Array.from({ length: 10 }, (_, n) => waitDelayMs(n))).toEqual([1, 1, 1, 2, 4, 8, 16, 32, 50, 50]);
  });
});
