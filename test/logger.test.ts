/**
 * The library's logging path: a listener given a pino-compatible logger writes every line through it
 * and nothing to stdout or stderr (checked in a child process, whose output is captured whole).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/cli/log.ts';
import { useTestDatabase } from './support/db.ts';

const t = useTestDatabase();

describe('createListener(db, { logger })', () => {
  it('logs start, retries, dead letters, processed and stop through the logger, and writes nothing to stdout or stderr', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgpubsub-logger-'));
    const out = join(dir, 'records.json');
    try {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'jiti/register',
          join(import.meta.dirname, 'fixtures', 'logger-listener.ts'),
          t.url,
          out,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: '', stderr: '' });

      const records = JSON.parse(readFileSync(out, 'utf8')) as {
        level: string;
        fields: Record<string, any>;
        msg: string;
      }[];
      const find = (level: string, re: RegExp) => records.filter((r) => r.level === level && re.test(r.msg));
      expect(find('info', /^listening on log_jobs$/)[0]!.fields).toEqual({
        channels: ['log_jobs'],
        concurrency: 2,
        batchSize: expect.any(Number),
      });
      const [retry] = find(
        'warn',
        /^handler failed on log_jobs #\d+ \(attempt 1\): boom 2; retrying in \d+ms$/,
      );
      expect(retry!.fields).toMatchObject({
        channel: 'log_jobs',
        attempt: 1,
        retryAt: expect.any(String),
        err: { message: 'boom 2' },
      });
      const [dead] = find(
        'error',
        /^log_jobs #\d+ failed for good after 2 attempts: boom 2 \(kept as failed/,
      );
      expect(dead!.fields).toMatchObject({ channel: 'log_jobs', attempts: 2, err: { message: 'boom 2' } });
      expect(dead!.fields.id).toBe(retry!.fields.id);
      expect(find('debug', /^processed log_jobs #\d+$/)).toHaveLength(1);
      expect(find('info', /^listener stopped$/)).toHaveLength(1);
      expect(records.filter((r) => r.level === 'error')).toHaveLength(1); // no unexpected errors
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("the CLI's logger (pino-compatible)", () => {
  const at = new Date('2026-12-04T12:00:00.000Z');
  it('--json: one pino-shaped object per line (level number, time, pid, hostname, bindings, fields, msg)', () => {
    const lines: string[] = [];
    const log = createLogger({
      json: true,
      bound: { worker: 2, pid: 7 },
      write: (l) => lines.push(l),
      now: () => at,
    });
    const error = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    log.info('plain');
    log.warn({ channel: 'c', err: error, skipped: undefined }, 'with fields');
    log.debug('dropped at info');
    const [plain, fields] = lines.map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(plain).toEqual({
      level: 30,
      time: at.getTime(),
      pid: 7,
      hostname: expect.any(String),
      worker: 2,
      msg: 'plain',
    });
    expect(Object.keys(fields)).toEqual([
      'level',
      'time',
      'pid',
      'hostname',
      'worker',
      'channel',
      'err',
      'msg',
    ]);
    expect(fields).toMatchObject({
      level: 40,
      channel: 'c',
      err: {
        type: 'Error',
        message: 'refused',
        code: 'ECONNREFUSED',
        stack: expect.stringContaining('Error: refused'),
      },
      msg: 'with fields',
    });
  });

  it('text: time, level, [tag], message, fields; an error shows its code only', () => {
    const lines: string[] = [];
    const log = createLogger({
      level: 'debug',
      bound: { role: 'supervisor', pid: 7 },
      write: (l) => lines.push(l),
      now: () => at,
    });
    log.debug(
      { n: 1, channels: ['a', 'b'], err: Object.assign(new Error('x'), { code: 'E1' }) },
      'two\nlines',
    );
    expect(lines).toEqual([
      '2026-12-04T12:00:00.000Z DEBUG [supervisor pid 7] two lines n=1 channels=a,b code=E1',
    ]);
    expect(log.isLevelEnabled('debug')).toBe(true);
    expect(log.isLevelEnabled('trace')).toBe(false);
  });
});
