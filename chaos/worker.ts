/**
 * One chaos listener process: a createListener with its own pool (postgres.js, or a pg.Pool when
 * PGPUBSUB_TEST_DRIVER=pg), connected through the
 * chaos proxy. Reports to the parent over IPC; SIGTERM stops it cleanly (exit 0).
 *
 * Environment: CHAOS_URL (through the proxy), CHAOS_WORKER (index), CHAOS_CONCURRENCY, CHAOS_BATCH,
 * CHAOS_POLL_MS, CHAOS_IDLE_TX_MS. With CHAOS_SPARE=1 the process loads its modules, says `loaded`
 * and waits for `{ type: 'start', worker }`: the parent keeps such spares warm so that a killed worker
 * is replaced at once instead of after a multi-second boot.
 */
import { createListener } from '../src/index.ts';
import { fixtureDb } from '../test/fixtures/driver-db.ts';
import { effects, failsFirstAttempt, handlerDelayMs, itemEvents, itemKey, jobKey, jobs } from './schema.ts';

/** Messages a worker sends to its parent. */
export type WorkerMessage =
  | { type: 'loaded'; pid: number }
  | { type: 'ready'; worker: number; pid: number }
  | {
      type: 'stats';
      worker: number;
      processed: number;
      failed: number;
      dead: number;
      errors: Record<string, number>;
      samples: string[];
      /** process.memoryUsage() of the worker, bytes. */
      rss: number;
      heapUsed: number;
    };

const url = process.env.CHAOS_URL;
if (!url) throw new Error('CHAOS_URL is required');
process.on('disconnect', () => process.exit(3));
// The parent may have died while this process was still loading: then 'disconnect' already fired.
if (!process.connected) process.exit(3);
const worker =
  process.env.CHAOS_SPARE === '1'
    ? await new Promise<number>((resolve) => {
        process.on('message', (m: { type?: string; worker?: number }) => {
          if (m?.type === 'start') resolve(Number(m.worker));
        });
        process.send?.({ type: 'loaded', pid: process.pid } satisfies WorkerMessage);
      })
    : Number(process.env.CHAOS_WORKER ?? 0);
const concurrency = Number(process.env.CHAOS_CONCURRENCY ?? 4);
const idleTxMs = Number(process.env.CHAOS_IDLE_TX_MS ?? 5000);

// On the test driver (PGPUBSUB_TEST_DRIVER=pg: a pg.Pool with the same settings).
const { db, close: closeClient } = fixtureDb(url, {
  // Claims plus the wake-up statements (flag, probe) that run beside them.
  max: concurrency + 2,
  // A connection attempt into a black hole must give up and retry, not hang.
  connectTimeout: 3,
  // TCP keepalive after 2 s idle: on a real network this is what ends a half-open connection.
  keepAlive: 2,
  idleTimeout: 10,
  maxLifetime: 120,
  applicationName: `chaos-worker-${worker}`,
  // Server side: a claim transaction whose client vanished gives back its row locks after this.
  idleInTransactionMs: idleTxMs,
});

const stats = {
  processed: 0,
  failed: 0,
  dead: 0,
  errors: {} as Record<string, number>,
  samples: [] as string[],
};

async function effect(key: string, id: string, ctxTx: unknown, attempt: number, tx: any): Promise<void> {
  const delay = handlerDelayMs(key);
  if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
  await tx.insert(effects).values({
    notificationId: BigInt(id),
    key,
    ctxTx: typeof ctxTx === 'string' ? ctxTx : null,
    worker,
    pid: process.pid,
    attempt,
  });
  // Fail after writing: the savepoint must roll the effect back.
  if (attempt === 1 && failsFirstAttempt(key)) throw new Error(`planned first-attempt failure of ${key}`);
}

function makeListener() {
  const listener = createListener(db, {
    concurrency,
    batchSize: Number(process.env.CHAOS_BATCH ?? 20),
    pollIntervalMs: Number(process.env.CHAOS_POLL_MS ?? 5000),
    backoff: () => 100,
  })
    .on(itemEvents, async (event, tx) => {
      const key =
        event.op === 'delete'
          ? itemKey('delete', event.old.tag)
          : itemKey(event.op === 'snapshot' ? 'insert' : event.op, event.new.tag);
      await effect(key, event.id, event.context.tx, event.attempt, tx);
    })
    .on(jobs, async (event, tx) => {
      await effect(jobKey(event.payload.tag), event.id, event.context.tx, event.attempt, tx);
    });
  listener.events.on('processed', () => void stats.processed++);
  listener.events.on('failed', () => void stats.failed++);
  listener.events.on('dead', (e) => {
    stats.dead++;
    sample(`dead ${e.channel} ${e.id}: ${String((e.error as Error)?.message ?? e.error)}`);
  });
  listener.events.on('error', ({ during, error }) => {
    const kind = during.replace(/"[^"]*"/g, '…');
    stats.errors[kind] = (stats.errors[kind] ?? 0) + 1;
    sample(`${kind}: ${String((error as Error)?.message ?? error)}`);
  });
  return listener;
}

const debug = process.env.CHAOS_DEBUG ? (text: string) => console.error(`${process.pid} ${text}`) : () => {};

function sample(text: string): void {
  debug(text);
  if (stats.samples.length < 20 && !stats.samples.includes(text)) stats.samples.push(text);
}

function report(): void {
  if (!process.connected) return;
  const { rss, heapUsed } = process.memoryUsage();
  const message: WorkerMessage = { type: 'stats', worker, ...stats, rss, heapUsed };
  process.send?.(message);
}

// Crash as Node would, but say which query the stray rejection belonged to.
process.on('unhandledRejection', (error) => {
  const e = error as { stack?: string; query?: string; code?: string };
  console.error(
    `unhandled rejection: ${e?.stack ?? error} (code ${e?.code}, query ${JSON.stringify(e?.query)})`,
  );
  process.exit(1);
});

const reporter = setInterval(report, 500);
let listener = makeListener();
process.on('SIGTERM', async () => {
  clearInterval(reporter);
  debug('SIGTERM: stopping listener');
  setTimeout(() => {
    // Internals, for diagnostics only (they may change).
    const l = listener as any;
    const sch = l.scheduler ?? l;
    debug(
      `SIGTERM: still stopping after 8 s: phase ${l.phase}, running ${sch.running}, background ${sch.background?.size}, inflight ${[...(sch.states?.values() ?? [])].map((s: any) => `${s.reg.channel.name}=${s.inflight}`).join(',')}`,
    );
  }, 8000).unref();
  await listener.stop({ timeoutMs: 5000 });
  debug('SIGTERM: listener stopped');
  report();
  await closeClient(2);
  debug('SIGTERM: client ended');
  process.exit(0);
});

// The database may be down or unreachable right now (restart, black hole): keep trying.
for (;;) {
  try {
    debug('starting');
    await listener.start();
    debug('started');
    break;
  } catch (error) {
    // A listener starts once: discard the failed one and build another.
    sample(`start: ${(error as Error).message}`);
    await listener.stop({ timeoutMs: 0 }).catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 250));
    listener = makeListener();
  }
}
process.send?.({ type: 'ready', worker, pid: process.pid } satisfies WorkerMessage);
