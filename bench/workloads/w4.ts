import postgres from 'postgres';
import { WorkerProcess } from '../lib/child.ts';
import { type BenchContext, VARIANTS, type WorkloadResult } from '../lib/context.ts';
import { clusterCpuMs } from '../lib/pg.ts';
import { Recorder, rotate, sleep } from '../lib/stats.ts';
import { findPgbench, writeRate } from '../lib/writers.ts';
import { itemsSql } from '../systems/ours.ts';
import type { Variant } from '../systems/types.ts';

const INSERT = `INSERT INTO w4_items (v, note) VALUES (1, 'x')`;

/** The listener of W4: ours with its default batch size, on the trigger channel of `w4_items`. */
const LISTENER: Variant = { ...VARIANTS.ours, key: 'ours-items', channel: 'items' };

interface Case {
  key: string;
  system: 'ours';
  label: string;
  trigger: boolean;
  listener: boolean;
  /** A listener ran and went idle, then was stopped (`stop()`) or SIGKILLed before the writers start. */
  before?: 'stopped' | 'killed';
}

const CASES: Case[] = [
  {
    key: 'plain',
    system: 'ours',
    label: 'no trigger (listener running, idle)',
    trigger: false,
    listener: true,
  },
  {
    key: 'trigger',
    system: 'ours',
    label: 'trigger channel, listener running and busy',
    trigger: true,
    listener: true,
  },
  {
    key: 'trigger-nolistener',
    system: 'ours',
    label: 'trigger channel, no listener',
    trigger: true,
    listener: false,
  },
  {
    key: 'trigger-stopped',
    system: 'ours',
    label: 'trigger channel, after the listener stopped',
    trigger: true,
    listener: false,
    before: 'stopped',
  },
  {
    key: 'trigger-killed',
    system: 'ours',
    label: 'trigger channel, after the listener was killed',
    trigger: true,
    listener: false,
    before: 'killed',
  },
];

/** Runs a listener until it has gone idle (its wake-up flag set), then stops or kills it. */
async function listenerGone(url: string, how: 'stopped' | 'killed'): Promise<void> {
  const worker = await WorkerProcess.spawn('w4-listener', 'ours');
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await worker.start(url, LISTENER, { sampleMs: 0 });
    const idle = async () =>
      (await sql`SELECT count(*)::int AS n FROM pgpubsub.wakeups WHERE idle`)[0]!.n > 0;
    for (const deadline = Date.now() + 60_000; !(await idle()); ) {
      if (Date.now() > deadline) throw new Error('W4: the listener did not go idle');
      await sleep(20);
    }
    if (how === 'stopped') await worker.stop();
    else await worker.kill();
    // Its sessions end (and their locks go) a moment after the process.
    const locks = async () =>
      (
        await sql`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
      )[0]!.n as number;
    // Only this database's locks: other databases of the cluster may run listeners of their own.
    for (const deadline = Date.now() + 60_000; (await locks()) > 0; ) {
      if (Date.now() > deadline) throw new Error('W4: the listener’s sessions did not end');
      await sleep(20);
    }
  } finally {
    await worker.kill();
    await sql.end({ timeout: 5 });
  }
}

const BULK: Case[] = [
  { key: 'bulk-plain', system: 'ours', label: 'bulk INSERT, no trigger', trigger: false, listener: false },
  {
    key: 'bulk-trigger',
    system: 'ours',
    label: 'bulk INSERT, trigger channel',
    trigger: true,
    listener: false,
  },
];

/** WAL position (bytes) and the cluster's CPU time (ms). */
async function walAndCpu(sql: postgres.Sql): Promise<{ wal: number; cpu: number }> {
  const [row] = await sql`SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8 AS wal`;
  return { wal: row!.wal as number, cpu: (await clusterCpuMs(sql)) ?? Number.NaN };
}

async function setup(url: string, trigger: boolean): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    for (const statement of itemsSql(trigger)) await sql.unsafe(statement);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * W4: what a trigger channel costs the user's write path. (a) `clients` connections commit single-row
 * INSERTs for `seconds`, into the table without and with the trigger, while a listener runs (busy
 * draining what the trigger writes), with no listener, and after a listener went idle and was then stopped or
 * killed (its wake-up flag must not make writers NOTIFY); (b) one INSERT of `w4BulkRows` rows without and with the trigger.
 */
export async function w4(ctx: BenchContext): Promise<WorkloadResult> {
  const {
    w4Seconds: seconds,
    w4Transactions: transactions,
    w4Clients: clients,
    w4BulkRows: bulkRows,
  } = ctx.sizes;
  const pgbench = await findPgbench();
  const rec = new Recorder();
  for (let rep = 0; rep < ctx.options.reps; rep++) {
    for (const c of rotate(CASES, rep)) {
      const db = await ctx.fresh('ours');
      let worker: WorkerProcess | undefined;
      try {
        await setup(db.url, c.trigger);
        if (c.before) await listenerGone(db.url, c.before);
        if (c.listener) {
          worker = await WorkerProcess.spawn('w4-listener', 'ours');
          await worker.start(db.url, LISTENER, { sampleMs: 0 });
          await sleep(200);
        }
        // A second LISTEN on the channel counts the NOTIFYs the producers sent (the listener's flag
        // protocol should keep them rare while it is busy).
        const sql = postgres(db.url, { max: 1, onnotice: () => {} });
        let notifies = 0;
        const spy = await sql.listen('w4_items', () => {
          notifies++;
        });
        const before = await walAndCpu(sql);
        await worker?.cpuMs(true);
        const tps = await writeRate(db.url, INSERT, { clients, seconds, transactions }, pgbench);
        const listenerCpuMs = worker ? await worker.cpuMs() : 0;
        const after = await walAndCpu(sql);
        await spy.unlisten();
        const [row] = await sql`SELECT
          (SELECT count(*) FROM w4_items)::int AS rows,
          (SELECT count(*) FROM pgpubsub.notifications)::int AS backlog`;
        await sql.end({ timeout: 5 });
        const rows = row!.rows as number;
        rec.add(c, {
          tps,
          rows,
          backlog: row!.backlog,
          handled: worker?.handled ?? 0,
          notifiesPer1k: (notifies * 1000) / rows,
          walBytesPerTx: (after.wal - before.wal) / rows,
          pgCpuUsPerTx: ((after.cpu - before.cpu) * 1000) / rows,
          listenerCpuMs,
        });
        ctx.log(
          `W4 rep ${rep + 1} ${c.key}: ${tps.toFixed(0)} tx/s, ${notifies} NOTIFYs, ${((after.wal - before.wal) / rows).toFixed(0)} WAL bytes/tx (backlog at end ${row!.backlog})`,
        );
      } finally {
        await worker?.kill();
        await ctx.drop(db.name);
      }
    }
    for (const c of rotate(BULK, rep)) {
      const db = await ctx.fresh('ours');
      try {
        await setup(db.url, c.trigger);
        const sql = postgres(db.url, { max: 1, onnotice: () => {} });
        await sql`SELECT 1 FROM w4_items LIMIT 1`;
        const before = await walAndCpu(sql);
        const t = performance.now();
        await sql.unsafe(
          `INSERT INTO w4_items (v, note) SELECT g, 'x' FROM generate_series(1, ${bulkRows}) g`,
        );
        const ms = performance.now() - t;
        const after = await walAndCpu(sql);
        // Events stored: notification rows, and the events of packed rows (storage version 5).
        const [row] = await sql`SELECT ((SELECT count(*) FROM pgpubsub.notifications)
          + (SELECT coalesce(sum("count"), 0) FROM pgpubsub.packed))::int AS n`;
        await sql.end({ timeout: 5 });
        rec.add(c, { ms, notifications: row!.n, walBytesPerRow: (after.wal - before.wal) / bulkRows });
        ctx.log(`W4 rep ${rep + 1} ${c.key}: ${ms.toFixed(0)} ms for ${bulkRows} rows`);
      } finally {
        await ctx.drop(db.name);
      }
    }
  }
  return {
    title: `W4 write path: ${clients} clients × single-row INSERT transactions for ${seconds > 0 ? `${seconds} s` : `${transactions} each`}; one ${bulkRows.toLocaleString('en-US')}-row INSERT`,
    params: { clients, seconds, bulkRows, client: pgbench ? 'pgbench -M prepared' : 'postgres.js' },
    rows: rec.result(),
  };
}
