/**
 * A backlog of large payloads (issue 14, item 14): a claim loads at most `batchBytes` of row images
 * and payloads (always at least one notification), so a listener with a 256 MB heap drains
 * 60 × 25 MB payloads without running out of memory.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import * as v from 'valibot';
import { afterAll, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { createListener } from '../src/runtime/listener.ts';
import { useTestDatabase } from './support/db.ts';
import { HEAVY } from './support/heavy.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase(['CREATE TABLE seen (n integer PRIMARY KEY, len integer NOT NULL)']);
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

const ROWS = 60;
/** 819,200 md5 hex digests: 26.2 MB that TOAST cannot compress. */
const BLOB = `(SELECT string_agg(md5(g::text), '') AS blob FROM generate_series(1, 819200) AS g)`;

describe('large payloads', () => {
  it.runIf(HEAVY)(
    `drains ${ROWS} × 25 MB payloads in a listener process with a 256 MB heap`,
    async () => {
      await t.sql.unsafe(
        `INSERT INTO pgpubsub.notifications (channel, payload)
       SELECT 'big', jsonb_build_object('n', n, 'blob', b.blob) FROM ${BLOB} AS b, generate_series(1, ${ROWS}) AS n`,
      );
      const [size] = await t.sql`SELECT min(pg_column_size(payload))::int AS min FROM pgpubsub.notifications`;
      expect(size!.min).toBeGreaterThan(25_000_000);
      const child = fork(join(import.meta.dirname, 'fixtures/big-payload-listener.ts'), {
        execArgv: ['--import', 'jiti/register', '--max-old-space-size=256'],
        env: { ...process.env, DATABASE_URL: t.url },
        stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      });
      children.push(child);
      let stderr = '';
      child.stderr!.on('data', (chunk) => {
        stderr += chunk;
      });
      const messages: unknown[] = [];
      child.on('message', (m) => messages.push(m));
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`listener exited ${child.exitCode}: ${stderr}`);
          const [row] = await t.sql`SELECT count(*)::int AS n, min(len) AS len FROM seen`;
          return row!.n === ROWS && row;
        },
        { timeoutMs: 240_000, intervalMs: 200, what: `${ROWS} large payloads handled` },
      ).catch((error) => {
        throw new Error(`${(error as Error).message}\nlistener stderr: ${stderr}`);
      });
      expect(child.exitCode).toBeNull();
      child.kill('SIGTERM');
      const report = await waitFor(() => messages.find((m) => typeof m === 'object') as { peakRss: number }, {
        timeoutMs: 20_000,
        what: 'the listener to report its peak RSS',
      });
      expect(report.peakRss).toBeLessThan(1024 * 1024 * 1024);
      const [left] = await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`;
      expect(left!.n).toBe(0);
    },
    300_000,
  );

  it('takes fewer notifications per claim when they pass the byte budget, but always at least one', async () => {
    const jobs = channel('budget', v.object({ n: v.number(), pad: v.string() }));
    await t.sql.unsafe(
      `INSERT INTO pgpubsub.notifications (channel, payload)
       SELECT 'budget', jsonb_build_object('n', n, 'pad', repeat('x', 1000 * (n % 3))) FROM generate_series(1, 30) AS n`,
    );
    const seen: number[] = [];
    const listener = createListener(t.db, { batchBytes: 2500 }).on(jobs, (e) => void seen.push(e.payload.n));
    const summary = await listener.drain();
    expect(summary.processed).toBe(30);
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });
});
