import { describe, expect, it } from 'vitest';
import { exitCodeFor, usageError } from '../../src/cli/exit-codes.ts';
import { formatTable } from '../../src/cli/format.ts';
import { parseDuration, parseLogLevel, parsePositiveInt } from '../../src/cli/parse.ts';
import { formatDuration } from '../../src/duration.ts';
import { PgPubSubError } from '../../src/errors.ts';

const fails = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error as PgPubSubError;
  }
  throw new Error('expected a usage error');
};

describe('CLI parsing and formatting', () => {
  it('parseDuration: units, plain milliseconds, and a usage error otherwise', () => {
    expect(['500ms', '30s', '5m', '2h', '7d', '250', '1.5s'].map((v) => parseDuration(v, '--x', ''))).toEqual(
      [500, 30_000, 300_000, 7_200_000, 604_800_000, 250, 1500],
    );
    const error = fails(() => parseDuration('soon', '--older-than', 'USAGE'));
    expect(error.code).toBe('INVALID_OPTIONS');
    expect(error.message).toMatch(/^--older-than must be a duration .*"soon"\.\n\nUSAGE$/s);
  });

  it('parsePositiveInt: integers from min up', () => {
    expect(parsePositiveInt('16', '--n', '')).toBe(16);
    expect(parsePositiveInt('0', '--n', '', 0)).toBe(0);
    for (const bad of ['0', '-1', '1.5', 'x', '']) {
      expect(fails(() => parsePositiveInt(bad, '--n', '')).code, bad).toBe('INVALID_OPTIONS');
    }
  });

  it('parseLogLevel: info by default, else one of the levels', () => {
    expect(parseLogLevel(undefined, '')).toBe('info');
    expect(parseLogLevel('debug', '')).toBe('debug');
    expect(fails(() => parseLogLevel('loud', '')).code).toBe('INVALID_OPTIONS');
  });

  it('formatDuration and formatTable', () => {
    expect([850, 2000, 1500, 200_000, 7_500_000, 3 * 86_400_000 + 4 * 3_600_000].map(formatDuration)).toEqual(
      ['850ms', '2s', '1.5s', '3m 20s', '2h 5m', '3d 4h'],
    );
    expect(
      formatTable(
        ['name', 'n'],
        [
          ['a', 1],
          ['bbb', 22],
        ],
      ),
    ).toBe('name   n\na      1\nbbb   22');
  });

  it('exit codes: usage 2, configuration 78, anything else 1', () => {
    expect(exitCodeFor(usageError('bad', 'usage'))).toBe(2);
    expect(exitCodeFor(new PgPubSubError('NO_DATABASE_URL', 'x'))).toBe(78);
    expect(exitCodeFor(new PgPubSubError('TABLE_MISSING', 'x'))).toBe(78);
    expect(exitCodeFor(new PgPubSubError('DATABASE_UNREACHABLE', 'x'))).toBe(1);
    expect(exitCodeFor(new Error('bug'))).toBe(1);
  });
});
