import { afterAll, describe, expect, it } from 'vitest';
import { notify } from '../src/notify.ts';
import { createTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { counterEvents, sends } from './fixtures/ordered-channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';
import { workerPool } from './support/workers.ts';

const HOT = 4;
const COLD = 20;
const HOT_UPDATES = 40;
const SEND_KEYS = ['k1', 'k2'];
const SENDS_PER_PRODUCER = 16;
const PRODUCERS = 4;

const t = useTestDatabase([
  'CREATE TABLE counters (id integer PRIMARY KEY, version integer NOT NULL)',
  'CREATE TABLE applied (seq bigserial PRIMARY KEY, channel text NOT NULL, key text NOT NULL, version integer NOT NULL, worker text NOT NULL)',
  'CREATE TABLE sent (k text NOT NULL, token text PRIMARY KEY, v integer NOT NULL)',
  ...createTriggerSql(resolveTriggerSpec(counterEvents)),
]);

const { start: startWorker, exited, killAll } = workerPool('ordered-worker.ts', () => t.url);
afterAll(killAll);

/** Per channel and key, the versions in the order their effects committed. */
async function applied(): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const r of await t.sql`SELECT channel, key, version FROM applied ORDER BY seq`) {
    const id = `${r.channel}:${r.key}`;
    out.set(id, [...(out.get(id) ?? []), r.version]);
  }
  return out;
}

const count = async () => (await t.sql`SELECT count(*)::int AS n FROM applied`)[0]?.n as number;

describe('ordered channels under concurrency', () => {
  it('apply every key’s events exactly once, in commit order, across 3 processes with random failures and a SIGKILL', async () => {
    await t.sql`INSERT INTO counters SELECT g, 0 FROM generate_series(1, ${HOT + COLD}) g`;
    const workers = await Promise.all(['w1', 'w2', 'w3'].map((name) => startWorker(name)));
    // Writers: each UPDATE is its own transaction; the row lock orders the writers of a row, so a
    // row's versions are its commit order.
    const hot = Array.from({ length: HOT }, (_, i) => i + 1).flatMap((id) =>
      [0, 1].map(async () => {
        for (let i = 0; i < HOT_UPDATES / 2; i++)
          await t.sql`UPDATE counters SET version = version + 1 WHERE id = ${id}`;
      }),
    );
    const cold = (async () => {
      for (let round = 0; round < 3; round++)
        await t.sql`UPDATE counters SET version = version + 1 WHERE id > ${HOT}`;
    })();
    // Producers of a custom channel: nothing but notify's lock on (channel, key) orders two
    // producers of one key; `v` is the key's commit order, read under that lock.
    let token = 0;
    const producers = Array.from({ length: PRODUCERS }, () =>
      (async () => {
        for (let i = 0; i < SENDS_PER_PRODUCER; i++) {
          const k = SEND_KEYS[i % SEND_KEYS.length]!;
          const tk = `t${token++}`;
          await t.db.transaction(async (tx) => {
            await notify(tx, sends, { k, token: tk });
            await tx.execute(
              `INSERT INTO sent (k, token, v) SELECT '${k}', '${tk}', coalesce(max(v), 0) + 1 FROM sent WHERE k = '${k}'` as never,
            );
          });
        }
      })(),
    );
    const total = HOT * HOT_UPDATES + COLD * 3 + PRODUCERS * SENDS_PER_PRODUCER;
    await waitFor(async () => (await count()) >= total / 3, {
      timeoutMs: 60_000,
      what: 'a third of the work',
    });
    workers[0]!.kill('SIGKILL');
    await exited(workers[0]!);
    await Promise.all([...hot, cold, ...producers]);
    await waitFor(async () => (await count()) >= total, { timeoutMs: 60_000, what: 'all effects' });
    await waitFor(
      async () => (await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`)[0]?.n === 0,
      { timeoutMs: 30_000, what: 'the notifications to be deleted' },
    );
    const log = await applied();
    const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
    for (let id = 1; id <= HOT + COLD; id++)
      expect(log.get(`counters:${id}`), `row ${id}`).toEqual(upTo(id <= HOT ? HOT_UPDATES : 3));
    for (const k of SEND_KEYS)
      expect(log.get(`sends:${k}`), `key ${k}`).toEqual(
        upTo((PRODUCERS * SENDS_PER_PRODUCER) / SEND_KEYS.length),
      );
    expect(await count()).toBe(total);
    for (const w of workers.slice(1)) w.kill('SIGTERM');
    await Promise.all(workers.slice(1).map(exited));
    expect(workers.slice(1).map((w) => w.exitCode)).toEqual([0, 0]);
  }, 120_000);
});
