import { describe, expect, it } from 'vitest';
import { type ListenerPresence, parsePresence, presenceSql } from '../../src/storage/sql-names.ts';

const base: ListenerPresence = {
  host: "web-1's box",
  pid: 4242,
  channels: ["it's", 'b*/c', 'é'],
  startedAt: 1_700_000_000_000,
  lastClaimAt: null,
  handled: 0,
};

describe('listener presence on the LISTEN session', () => {
  it('round-trips through the statement text, quotes included', () => {
    const text = presenceSql({ ...base, lastClaimAt: 1_700_000_005_000, handled: 7 });
    expect(text.startsWith('/* drizzle-pgpubsub LISTEN session */ SELECT ')).toBe(true);
    expect(parsePresence(text)).toEqual({ ...base, lastClaimAt: 1_700_000_005_000, handled: 7 });
  });

  it('stays under 1024 bytes (track_activity_query_size) by leaving channels out and counting them', () => {
    const channels = Array.from({ length: 100 }, (_, i) => `channel_with_a_long_name_${i}`);
    const text = presenceSql({ ...base, channels });
    expect(Buffer.byteLength(text)).toBeLessThan(1024);
    const parsed = parsePresence(text)!;
    expect(parsed.channels.length + parsed.more!).toBe(100);
    expect(parsed.channels).toEqual(channels.slice(0, parsed.channels.length));
  });

  it('counts the doubled quotes of the SQL literal in that limit', () => {
    const channels = Array.from({ length: 40 }, (_, i) => `'''''''''''''''''''''''''''''''${i}`);
    const text = presenceSql({ ...base, channels });
    expect(Buffer.byteLength(text)).toBeLessThan(1024);
    const parsed = parsePresence(text)!;
    expect(parsed.channels).toEqual(channels.slice(0, parsed.channels.length));
    expect(parsed.channels.length + parsed.more!).toBe(40);
  });

  it('ignores other statements and cut text', () => {
    const text = presenceSql(base);
    expect(parsePresence(text.slice(0, 80))).toBeUndefined();
    expect(parsePresence('LISTEN "x"')).toBeUndefined();
    expect(
      parsePresence('/* drizzle-pgpubsub LISTEN session */ SELECT pg_try_advisory_lock(1, 2)'),
    ).toBeUndefined();
  });
});
