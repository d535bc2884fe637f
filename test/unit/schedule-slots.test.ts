import { describe, expect, it } from 'vitest';
import { isPgPubSubError } from '../../src/errors.ts';
import { MAX_CATCH_UP, schedule } from '../../src/schedule.ts';
import { dueSlots, slotsAfter } from '../../src/schedule-slots.ts';

const NY = 'America/New_York';
const iso = (dates: Date[]) => dates.map((d) => d.toISOString());
const local = (d: Date) =>
  d.toLocaleString('en-US', { timeZone: NY, hour12: false, timeZoneName: 'short' }).replace(',', '');

describe('schedule slots across daylight saving time (America/New_York)', () => {
  it('spring forward 2026-03-08: a slot in the missing hour fires once, at 03:00 EDT', () => {
    const slots = slotsAfter(
      { cron: '30 2 * * *', timezone: NY, catchUp: 1 },
      new Date('2026-03-06T12:00:00Z'),
      3,
    );
    expect(iso(slots)).toEqual([
      '2026-03-07T07:30:00.000Z', // 02:30 EST
      '2026-03-08T07:00:00.000Z', // 02:30 does not exist: 03:00 EDT, the first instant after the gap
      '2026-03-09T06:30:00.000Z', // 02:30 EDT
    ]);
    expect(local(slots[1]!)).toBe('3/8/2026 03:00:00 EDT');
  });

  it('spring forward: an hourly schedule has no slot in the missing hour and none twice', () => {
    const slots = slotsAfter(
      { cron: '0 * * * *', timezone: NY, catchUp: 1 },
      new Date('2026-03-08T05:30:00Z'),
      3,
    );
    expect(slots.map(local)).toEqual([
      '3/8/2026 01:00:00 EST',
      '3/8/2026 03:00:00 EDT',
      '3/8/2026 04:00:00 EDT',
    ]);
    expect(slots[1]!.getTime() - slots[0]!.getTime()).toBe(3_600_000);
  });

  it('fall back 2026-11-01: a fixed-time slot in the repeated hour fires once (first occurrence, EDT)', () => {
    const slots = slotsAfter(
      { cron: '30 1 * * *', timezone: NY, catchUp: 1 },
      new Date('2026-10-31T12:00:00Z'),
      2,
    );
    expect(iso(slots)).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
    expect(local(slots[0]!)).toBe('11/1/2026 01:30:00 EDT');
  });

  it('fall back: wildcard-hour expressions fire in both 01:00 hours, an hour apart', () => {
    const slots = slotsAfter(
      { cron: '*/30 * * * *', timezone: NY, catchUp: 1 },
      new Date('2026-11-01T04:50:00Z'),
      5,
    );
    expect(slots.map(local)).toEqual([
      '11/1/2026 01:00:00 EDT',
      '11/1/2026 01:30:00 EDT',
      '11/1/2026 01:00:00 EST',
      '11/1/2026 01:30:00 EST',
      '11/1/2026 02:00:00 EST',
    ]);
  });

  it('dueSlots around the fall-back fixed slot: the repeated 01:30 is not due a second time', () => {
    const s = { cron: '30 1 * * *', timezone: NY, catchUp: 1 };
    const afterFirst = new Date('2026-11-01T05:30:00Z'); // fence: the EDT 01:30 fired
    const due = dueSlots(s, afterFirst, new Date('2026-11-01T06:30:30Z')); // 30 s after 01:30 EST
    expect(due.fire).toEqual([]);
    expect(due.fence).toBeNull();
    expect(due.next?.toISOString()).toBe('2026-11-02T06:30:00.000Z');
  });
});

describe('dueSlots: late slots always fire, missed slots follow catchUp', () => {
  const fence = new Date('2026-06-01T00:00:00Z');
  const now = new Date('2026-06-01T01:00:30Z'); // 1 h later: 60 minute slots are due, the last one late
  const at = (catchUp: number) => dueSlots({ cron: '* * * * *', timezone: 'UTC', catchUp }, fence, now);

  it("'latest' (1): the most recent missed slot and the late one", () => {
    const due = at(1);
    expect(iso(due.fire)).toEqual(['2026-06-01T00:59:00.000Z', '2026-06-01T01:00:00.000Z']);
    expect(due.fence?.toISOString()).toBe('2026-06-01T01:00:00.000Z');
    expect(due.skipped).toBe(true);
    expect(due.next?.toISOString()).toBe('2026-06-01T01:01:00.000Z');
  });

  it("'all': every slot, oldest first; 0: only the late one; 3: the 3 most recent missed", () => {
    expect(at(MAX_CATCH_UP).fire).toHaveLength(60);
    expect(at(MAX_CATCH_UP).fire[0]?.toISOString()).toBe('2026-06-01T00:01:00.000Z');
    expect(at(MAX_CATCH_UP).skipped).toBe(false);
    expect(iso(at(0).fire)).toEqual(['2026-06-01T01:00:00.000Z']);
    expect(at(0).fence?.toISOString()).toBe('2026-06-01T01:00:00.000Z');
    expect(iso(at(3).fire)).toEqual([
      '2026-06-01T00:57:00.000Z',
      '2026-06-01T00:58:00.000Z',
      '2026-06-01T00:59:00.000Z',
      '2026-06-01T01:00:00.000Z',
    ]);
  });

  it('a seconds cron 10 s late fires all 10 slots whatever catchUp says', () => {
    const due = dueSlots(
      { cron: '* * * * * *', timezone: 'UTC', catchUp: 0 },
      new Date('2026-06-01T00:00:00Z'),
      new Date('2026-06-01T00:00:10.400Z'),
    );
    expect(due.fire).toHaveLength(10);
    expect(due.fence?.toISOString()).toBe('2026-06-01T00:00:10.000Z');
  });

  it('nothing due: the next slot, never the fence itself', () => {
    const due = dueSlots(
      { cron: '0 * * * *', timezone: 'UTC', catchUp: 1 },
      fence,
      new Date('2026-06-01T00:59:59Z'),
    );
    expect(due).toMatchObject({ fire: [], fence: null });
    expect(due.next?.toISOString()).toBe('2026-06-01T01:00:00.000Z');
  });
});

describe('schedule(): declaration checks', () => {
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      return isPgPubSubError(error) ? `${error.code}: ${error.message}` : String(error);
    }
    return 'no error';
  };
  it('refuses bad cron, time zone, catchUp and payload with INVALID_SCHEDULE', () => {
    expect(code(() => schedule('a', 'every day'))).toMatch(
      /^INVALID_SCHEDULE: schedule\("a"\): cannot read cron/,
    );
    expect(code(() => schedule('a', '0 0 31 2 *'))).toContain('never matches');
    expect(code(() => schedule('a', '? * * * *'))).toContain('`?`');
    expect(code(() => schedule('a', '* * * * *', { timezone: 'Mars/Base' }))).toContain('IANA time zone');
    expect(code(() => schedule('a', '* * * * *', { catchUp: 1001 }))).toContain('`catchUp`');
    expect(code(() => schedule('a', '* * * * *', { payload: { n: 1n } as never }))).toContain(
      '`payload` must be JSON',
    );
    expect(code(() => schedule('', '* * * * *'))).toMatch(/^INVALID_CHANNEL_NAME/);
  });
  it('normalizes and defaults', () => {
    const s = schedule('nightly', '  0  3 * * * ');
    expect(s.schedule).toEqual({ cron: '0 3 * * *', timezone: 'UTC', payload: null, catchUp: 1 });
    expect(schedule('x', '* * * * *', { catchUp: 'all' }).schedule.catchUp).toBe(MAX_CATCH_UP);
  });
});
