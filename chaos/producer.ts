import { inArray, sql } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { notify, withContext } from '../src/index.ts';
import type { Rng } from './prng.ts';
import { itemKey, items, jobKey, jobs } from './schema.ts';

/** What all producers did, as they saw it. */
export interface ProducerLedger {
  /** Transactions known committed, with the notification keys each produced. */
  committed: Map<string, string[]>;
  /** COMMIT acknowledged by the server (a subset of `committed`): must survive any fault. */
  acknowledged: Set<string>;
  /** Transactions that failed with the outcome resolved as "not committed" via the marker row. */
  notCommitted: Set<string>;
  /** Transactions the producer rolled back on purpose (their notifications must never be seen). */
  rolledBack: Set<string>;
  /** Errors while COMMIT was in flight (outcome unknown until the marker was checked), by resolution. */
  commitUnknown: { committed: number; notCommitted: number };
  /** Failed attempts by error text (shortened). */
  errors: Map<string, number>;
}

export function emptyLedger(): ProducerLedger {
  return {
    committed: new Map(),
    acknowledged: new Set(),
    notCommitted: new Set(),
    rolledBack: new Set(),
    commitUnknown: { committed: 0, notCommitted: 0 },
    errors: new Map(),
  };
}

/** Shared pacing: producers together aim at `target` notifications spread over `durationMs`. */
export interface Pace {
  target: number;
  durationMs: number;
  startedAt: number;
  /** Keys reserved by transactions in flight or committed. */
  reserved: number;
}

class Rollback extends Error {}

/** Runs one statement on the harness's direct (not proxied) connection and returns its rows. */
export type Admin = <T = Record<string, any>>(text: string, params?: unknown[]) => Promise<T[]>;

/** A direct node-postgres pool for the harness, with {@link Admin} on top. */
export function adminPool(url: string): { query: Admin; end: () => Promise<void> } {
  const pool = new pg.Pool({ connectionString: url, max: 3, connectionTimeoutMillis: 5000 });
  pool.on('connect', (client) => client.on('error', () => {}));
  pool.on('error', () => {});
  return {
    query: async (text, params) => (await pool.query(text, params as unknown[])).rows,
    end: () => pool.end(),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function shortError(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return `${e?.code ?? 'error'}: ${String(e?.message ?? error)
    .split('\n')[0]!
    .slice(0, 80)}`;
}

/**
 * One producer: its own connection (through the proxy), its own rows. Each transaction inserts,
 * updates and deletes some of its rows and sends some custom notifications, under a context naming
 * the transaction, and writes its marker row last.
 */
export class Producer {
  private conn: { client: pg.Client; db: NodePgDatabase } | undefined;
  private readonly live: number[] = [];
  private counter = 0;
  /** What this producer is doing now (for stall diagnostics). */
  status = 'idle';

  constructor(
    private readonly id: number,
    private readonly url: string,
    private readonly admin: Admin,
    private readonly rng: Rng,
    private readonly ledger: ProducerLedger,
    private readonly pace: Pace,
  ) {}

  async run(): Promise<void> {
    const pace = this.pace;
    while (pace.reserved < pace.target) {
      const allowed = (pace.target * (performance.now() - pace.startedAt)) / pace.durationMs;
      if (pace.reserved >= allowed) {
        await sleep(5 + this.rng.int(0, 10));
        continue;
      }
      await this.transaction();
    }
  }

  async close(): Promise<void> {
    await this.conn?.client.end().catch(() => {});
    this.conn = undefined;
  }

  /**
   * One node-postgres client, replaced after any error. node-postgres, not postgres.js: postgres.js
   * 3.4.9 can crash the process when a connection drops with a write buffered (porsager/postgres#1154),
   * and the harness must outlive every fault. No pg.Pool either: Drizzle releases a broken client back
   * into the pool (release() without the error), which then fails every later transaction.
   */
  private async connection(): Promise<NodePgDatabase> {
    if (!this.conn) {
      const client = new pg.Client({
        connectionString: this.url,
        connectionTimeoutMillis: 3000,
        keepAlive: true,
        keepAliveInitialDelayMillis: 2000,
        application_name: `chaos-producer-${this.id}`,
      });
      client.on('error', () => {});
      this.conn = { client, db: drizzle({ client: client }) };
      try {
        await client.connect();
      } catch (error) {
        this.conn = undefined;
        await client.end().catch(() => {});
        throw error;
      }
    }
    return this.conn.db;
  }

  private plan() {
    const nIns = this.rng.int(0, 4);
    const nUpd = Math.min(this.live.length, this.rng.int(0, 3));
    const nDel = Math.min(this.live.length - nUpd, this.rng.int(0, 2));
    const nJobs = this.rng.int(0, 3);
    // Pick distinct rows for updates and deletes.
    const pool = [...this.live];
    const take = (n: number) =>
      Array.from({ length: n }, () => pool.splice(this.rng.int(0, pool.length - 1), 1)[0]!);
    return {
      nIns: nIns + nUpd + nDel + nJobs === 0 ? 1 : nIns,
      upd: take(nUpd),
      del: take(nDel),
      nJobs,
      rollback: this.rng.chance(0.03),
      bigPad: this.rng.chance(0.01),
    };
  }

  private async transaction(): Promise<void> {
    const txId = `p${this.id}-${++this.counter}`;
    const plan = this.plan();
    const planned = plan.nIns + plan.upd.length + plan.del.length + plan.nJobs;
    this.pace.reserved += planned;
    let phase = 'body' as 'body' | 'marker' | 'commit';
    this.status = `${txId} begin`;
    let backend: { pid: number; started: string } | undefined;
    const keys: string[] = [];
    const inserted: number[] = [];
    let seq = 0;
    const tag = () => `${txId}.${seq++}`;
    try {
      const db = await this.connection();
      await db.transaction(async (tx) => {
        const { rows: who } = await tx.execute<{ pid: number; started: string }>(
          sql`SELECT pg_backend_pid() AS pid, backend_start::text AS started FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
        );
        backend = who[0];
        this.status = `${txId} body (backend ${backend?.pid})`;
        await withContext(tx, { tx: txId, producer: this.id });
        if (plan.nIns > 0) {
          const rows = Array.from({ length: plan.nIns }, () => {
            const t = tag();
            return {
              tag: t,
              producer: this.id,
              big: 2n ** 60n + BigInt(this.rng.int(0, 1e9)),
              meta: { n: seq, s: `it's "${t}" ✓` },
            };
          });
          const ids = await tx.insert(items).values(rows).returning({ id: items.id, tag: items.tag });
          for (const r of ids) {
            inserted.push(r.id);
            keys.push(itemKey('insert', r.tag));
          }
        }
        if (plan.upd.length > 0) {
          const changes = plan.upd.map((id) => ({ id, tag: tag() }));
          const { rows } = await tx.execute<{ tag: string }>(
            sql`UPDATE chaos_items AS i SET tag = u.tag, v = i.v + 1
                FROM jsonb_to_recordset(${JSON.stringify(changes)}::jsonb) AS u(id bigint, tag text)
                WHERE i.id = u.id RETURNING i.tag`,
          );
          for (const r of rows) keys.push(itemKey('update', r.tag));
        }
        if (plan.del.length > 0) {
          const rows = await tx
            .delete(items)
            .where(inArray(items.id, plan.del))
            .returning({ tag: items.tag });
          for (const r of rows) keys.push(itemKey('delete', r.tag));
        }
        for (let j = 0; j < plan.nJobs; j++) {
          const t = tag();
          const pad = plan.bigPad && j === 0 ? 'x'.repeat(20_000) : 'p'.repeat(this.rng.int(0, 200));
          await notify(tx, jobs, { tag: t, n: j, pad });
          keys.push(jobKey(t));
        }
        if (plan.rollback) throw new Rollback();
        phase = 'marker';
        await tx.execute(
          sql`INSERT INTO chaos_markers (tx, keys) VALUES (${txId}, ${JSON.stringify(keys)}::jsonb)`,
        );
        phase = 'commit';
        this.status = `${txId} commit (backend ${backend?.pid})`;
      });
    } catch (error) {
      this.pace.reserved -= planned;
      if (error instanceof Rollback) {
        this.ledger.rolledBack.add(txId);
        return;
      }
      void this.close();
      const text = shortError(error);
      this.ledger.errors.set(text, (this.ledger.errors.get(text) ?? 0) + 1);
      // Before the marker was sent the transaction cannot have committed; after, only the marker knows.
      this.status = `${txId} resolving after ${phase}: ${text}`;
      const committed = phase !== 'body' && (await this.resolve(txId, backend));
      if (phase === 'commit') this.ledger.commitUnknown[committed ? 'committed' : 'notCommitted']++;
      if (!committed) {
        this.ledger.notCommitted.add(txId);
        await sleep(20 + this.rng.int(0, 80));
        return;
      }
      this.pace.reserved += keys.length;
      this.apply(txId, keys, inserted, plan);
      return;
    }
    this.status = 'idle';
    this.pace.reserved += keys.length - planned;
    this.ledger.acknowledged.add(txId);
    this.apply(txId, keys, inserted, plan);
  }

  private apply(
    txId: string,
    keys: string[],
    inserted: number[],
    plan: { upd: number[]; del: number[] },
  ): void {
    this.ledger.committed.set(txId, keys);
    for (const id of plan.del) this.live.splice(this.live.indexOf(id), 1);
    this.live.push(...inserted);
  }

  /**
   * Did `txId` commit? Waits (on a direct admin connection) until the backend that ran it is gone, so
   * a COMMIT still running on the server cannot land after the answer, then looks for the marker.
   */
  private async resolve(
    txId: string,
    backend: { pid: number; started: string } | undefined,
  ): Promise<boolean> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        if (backend) {
          const alive = await this.admin(
            'SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start::text = $2',
            [backend.pid, backend.started],
          );
          if (alive.length > 0) throw new Error('backend still running');
        }
        const marker = await this.admin('SELECT 1 FROM chaos_markers WHERE tx = $1', [txId]);
        return marker.length > 0;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`could not resolve the outcome of ${txId}: ${error}`);
        await sleep(100);
      }
    }
  }
}
