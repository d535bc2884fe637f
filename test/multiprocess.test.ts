import { afterAll, describe, expect, it } from 'vitest';
import { createTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { itemEvents } from './fixtures/effect-channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';
import { workerPool } from './support/workers.ts';

const t = useTestDatabase([
  'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)',
  'CREATE TABLE effects (notification_id bigint NOT NULL, worker text NOT NULL)',
  ...createTriggerSql(resolveTriggerSpec(itemEvents)),
]);

const { start: startWorker, exited, killAll } = workerPool('effect-worker.ts', () => t.url);
afterAll(killAll);

async function stats() {
  const [row] = await t.sql`
    SELECT (SELECT count(*)::int FROM effects) AS effects,
           (SELECT count(DISTINCT notification_id)::int FROM effects) AS distinct_effects,
           (SELECT count(*)::int FROM pgpubsub.notifications) AS left_over`;
  return row as { effects: number; distinct_effects: number; left_over: number };
}

describe('many listener processes', () => {
  it('handle 4,000 notifications exactly once across 4 processes, including one killed mid-way', async () => {
    // Half of the work is committed before any listener runs, half while they run (4,000 in all:
    // each worker's share is still many batches of 25 claimed in competition, before and after the
    // kill; the CI's chaos and ordered-stress runs add volume).
    await t.sql`INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 1000) g`;
    await t.sql`SELECT pgpubsub.notify('jobs', jsonb_build_object('n', g)) FROM generate_series(1, 1000) g`;
    const workers = await Promise.all(['w1', 'w2', 'w3', 'w4'].map((name) => startWorker(name)));
    const live = [t.sql`INSERT INTO items (name) SELECT 'live ' || g FROM generate_series(1, 1000) g`];
    for (let i = 0; i < 10; i++) {
      live.push(
        t.sql`SELECT pgpubsub.notify('jobs', jsonb_build_object('n', g)) FROM generate_series(1, 100) g`,
      );
    }
    await Promise.all(live);
    await waitFor(async () => (await stats()).effects >= 800, { timeoutMs: 30_000, what: 'work to start' });
    workers[0]!.kill('SIGKILL');
    await exited(workers[0]!);
    await waitFor(async () => (await stats()).left_over === 0, {
      timeoutMs: 60_000,
      what: 'the backlog to drain',
    });
    const final = await stats();
    expect(final).toEqual({ effects: 4000, distinct_effects: 4000, left_over: 0 });
    const perWorker =
      await t.sql`SELECT worker, count(*)::int AS n FROM effects GROUP BY worker ORDER BY worker`;
    expect(perWorker.filter((r) => r.n > 0).length).toBeGreaterThanOrEqual(3);
    for (const w of workers.slice(1)) w.kill('SIGTERM');
    await Promise.all(workers.slice(1).map(exited));
    expect(workers.slice(1).map((w) => w.exitCode)).toEqual([0, 0, 0]);
  }, 120_000);
});
