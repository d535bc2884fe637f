import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { type PgServer, startPg, withDatabase } from '../tools/embedded-pg.ts';
import { NotifyCounter, per1000 } from './notify-count.ts';
import { createRng, type Rng } from './prng.ts';
import { type Admin, adminPool, emptyLedger, type Pace, Producer, type ProducerLedger } from './producer.ts';
import { ChaosProxy } from './proxy.ts';
import { chaosSetupSql, failsFirstAttempt } from './schema.ts';
import type { WorkerMessage } from './worker.ts';

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** Notifications the producers commit in total (approximately: the last transactions may overshoot). */
  notifications: number;
  /** Production is paced over this long; faults run at least this long. */
  durationMs: number;
  seed: number;
  workers: number;
  /** Listener concurrency per worker. */
  concurrency: number;
  producers: number;
  /** An existing PostgreSQL (admin URL); then the restart fault is skipped. */
  databaseUrl?: string | undefined;
  /** Give up waiting for the queue to drain after the last fault. */
  drainTimeoutMs: number;
  /** Safety sweep interval of the workers. */
  pollIntervalMs: number;
  /** How long a worker may take to stop after SIGTERM at the end. */
  stopTimeoutMs: number;
  /** The database's default_transaction_isolation for every session (producers, listeners, admin). */
  isolation?: 'read committed' | 'repeatable read' | 'serializable' | undefined;
  /** Inject only these kinds of fault (default: all). */
  faults?: readonly ('kill' | 'terminate' | 'reset' | 'blackhole' | 'restart')[] | undefined;
  /** Progress lines. */
  log: (line: string) => void;
}

export const DEFAULT_OPTIONS: ChaosOptions = {
  notifications: 20_000,
  durationMs: 60_000,
  seed: 20240611,
  workers: 4,
  concurrency: 4,
  producers: 4,
  drainTimeoutMs: 120_000,
  pollIntervalMs: 5000,
  stopTimeoutMs: 15_000,
  log: (line) => console.log(line),
};

export type FaultKind =
  | 'kill'
  | 'terminate'
  | 'reset'
  | 'blackhole-heal'
  | 'blackhole-sever'
  | 'restart'
  | 'kill-during-restart';

/** Everything a chaos run measured. `violations` empty means every guarantee held. */
export interface ChaosReport {
  seed: number;
  options: Omit<ChaosOptions, 'log'>;
  notifications: number;
  transactions: {
    committed: number;
    acknowledged: number;
    rolledBackOnPurpose: number;
    failedByFault: number;
    commitOutcomeUnknown: { committed: number; notCommitted: number };
  };
  faults: Record<FaultKind, number>;
  /** Connections the faults hit. */
  cut: { terminatedBackends: number; resetConnections: number; blackholedConnections: number };
  restartDownMs: number | null;
  effects: number;
  duplicates: { byNotificationId: number; byKey: number; extraRows: number };
  lost: number;
  phantoms: number;
  contextMismatches: number;
  pending: number;
  failed: number;
  /** Handler runs beyond the planned first-attempt failures (attempts charged by infrastructure faults). */
  extraAttempts: number;
  /** Milliseconds from the end of the last fault until nothing was pending. */
  drainAfterLastFaultMs: number | null;
  /** Notifications pending when production and the faults ended (what the drain had to do). */
  backlogAtLastFault: number;
  productionMs: number;
  totalMs: number;
  workerErrors: Record<string, number>;
  workerSamples: string[];
  workerExits: {
    clean: number;
    unclean: string[];
    driverCrashes: number;
    driverTypeCrashes: number;
    slowStops: string[];
  };
  producerErrors: Record<string, number>;
  /**
   * NOTIFYs that writers sent per 1,000 writes: while listeners ran (lower bound: the counter misses
   * the restart window), after every listener stopped, and after the only listener was SIGKILLed.
   * The last two must be 0 (issue 20): a listener that is gone costs writers nothing.
   */
  notifies: Record<
    'withListeners' | 'afterStop' | 'afterKill',
    { notifies: number; writes: number; per1000: number }
  >;
  /** Broken guarantees: duplicates, losses, phantoms, leftovers, unexplained crashes. */
  violations: string[];
  /** Liveness problems that broke no guarantee (known driver crashes, slow shutdowns). */
  warnings: string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The signature of porsager/postgres#1154: a buffered write after the socket closed, uncatchable. */
const DRIVER_CRASH = /Cannot read properties of null \(reading 'write'\)\s+at Immediate\.nextWrite/;
/** porsager/postgres#1192: the array-type lookup of a new connection fails and its rejection is unhandled. */
const DRIVER_TYPES_CRASH = /unhandled rejection: .*query "[^"]*typarray/s;
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

interface WorkerSlot {
  index: number;
  child: ChildProcess | undefined;
  ready: boolean;
  expectedExit: boolean;
  /** Last stats of each process this slot ran, summed at the end. */
  stats: Map<number, Extract<WorkerMessage, { type: 'stats' }>>;
}

export class Workers {
  readonly slots: WorkerSlot[];
  readonly unclean: string[] = [];
  /** Workers that did not finish stop() in time (liveness, not safety). */
  readonly slowStops: string[] = [];
  /** Worker processes killed by the postgres.js 3.4.9 nextWrite crash (porsager/postgres#1154). */
  driverCrashes = 0;
  /** Worker processes killed by the unhandled rejection of postgres.js's array-type lookup (porsager/postgres#1192). */
  driverTypeCrashes = 0;
  clean = 0;
  private stopping = false;
  /** Describes a worker's backends when it fails to stop. */
  diagnose: ((index: number) => Promise<string>) | undefined;

  /** Environment of the worker processes (the proxy URL and listener settings). */
  env: Record<string, string> = {};

  constructor(count: number) {
    this.slots = Array.from({ length: count }, (_, index) => ({
      index,
      child: undefined,
      ready: false,
      expectedExit: false,
      stats: new Map(),
    }));
  }

  /** Warm processes (modules loaded, listener not started) waiting to replace a killed worker. */
  private readonly spares: { child: ChildProcess; loaded: Promise<boolean>; stderr: () => string }[] = [];
  /** How many spares to keep warm. */
  spareCount = 2;

  private fork(): { child: ChildProcess; loaded: Promise<boolean>; stderr: () => string } {
    const child = fork(WORKER, [], {
      execArgv: ['--import', 'jiti/register'],
      env: { ...process.env, ...this.env, CHAOS_SPARE: '1' },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr = (stderr + String(chunk)).slice(-2000);
      if (process.env.CHAOS_DEBUG) process.stderr.write(`[${child.pid}] ${chunk}`);
    });
    const loaded = new Promise<boolean>((resolve) => {
      child.on('message', (m: WorkerMessage) => m.type === 'loaded' && resolve(true));
      child.once('exit', () => resolve(false));
    });
    return { child, loaded, stderr: () => stderr };
  }

  private topUp(): void {
    while (!this.stopping && this.spares.length < this.spareCount) {
      const spare = this.fork();
      this.spares.push(spare);
      spare.child.once('exit', () => {
        const i = this.spares.indexOf(spare);
        if (i >= 0) this.spares.splice(i, 1);
      });
    }
  }

  spawn(slot: WorkerSlot): Promise<void> {
    const spare = this.spares.shift() ?? this.fork();
    this.topUp();
    const child = spare.child;
    void spare.loaded.then((ok) => ok && child.send({ type: 'start', worker: slot.index }));
    slot.child = child;
    slot.ready = false;
    slot.expectedExit = false;
    let childReady = false;
    const ready = new Promise<void>((resolve) => {
      child.on('message', (message: WorkerMessage) => {
        if (message.type === 'ready') {
          childReady = true;
          if (slot.child === child) slot.ready = true;
          resolve();
        }
        if (message.type === 'stats' && child.pid) slot.stats.set(child.pid, message);
      });
      child.on('exit', () => resolve());
    });
    child.on('exit', (code, signal) => {
      if (slot.child === child) slot.child = undefined;
      if (slot.expectedExit || signal === 'SIGKILL') {
        // A worker still booting has no SIGTERM handler yet: dying of the signal is its clean exit.
        if (code === 0 || (signal === 'SIGTERM' && !childReady)) this.clean++;
        else if (signal !== 'SIGKILL')
          this.unclean.push(`worker ${slot.index} exited with ${code ?? signal}`);
        return;
      }
      const stderr = spare.stderr();
      if (DRIVER_CRASH.test(stderr)) this.driverCrashes++;
      else if (DRIVER_TYPES_CRASH.test(stderr)) this.driverTypeCrashes++;
      else {
        this.unclean.push(
          `worker ${slot.index} died unexpectedly (${code ?? signal}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`,
        );
      }
      if (!this.stopping) void this.spawn(slot);
    });
    return ready;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.spawn(slot)));
  }

  /** SIGKILLs the worker in a slot and starts a replacement at once. */
  async kill(slot: WorkerSlot): Promise<void> {
    const child = slot.child;
    if (!child) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    if (!this.stopping) void this.spawn(slot);
  }

  /** SIGKILLs every worker at once and spawns no more (the run is being interrupted). */
  killAll(): void {
    this.stopping = true;
    for (const slot of this.slots) slot.child?.kill('SIGKILL');
    for (const spare of this.spares.splice(0)) spare.child.kill('SIGKILL');
  }

  /** SIGTERMs every worker and waits for clean exits (SIGKILL after `timeoutMs`). */
  async stopAll(timeoutMs: number): Promise<void> {
    this.stopping = true;
    for (const spare of this.spares.splice(0)) spare.child.kill('SIGKILL');
    await Promise.all(
      this.slots.map(async (slot) => {
        const child = slot.child;
        if (!child) return;
        slot.expectedExit = true;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(async () => {
          const rows = this.diagnose
            ? await this.diagnose(slot.index).catch((e) => `diagnosis failed: ${e}`)
            : '';
          this.slowStops.push(
            `worker ${slot.index} did not stop within ${timeoutMs} ms; its backends: ${rows}`,
          );
          child.kill('SIGKILL');
        }, timeoutMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  /** The latest stats of each slot's current process. */
  current(): (Extract<WorkerMessage, { type: 'stats' }> | undefined)[] {
    return this.slots.map((slot) => (slot.child?.pid ? slot.stats.get(slot.child.pid) : undefined));
  }

  totals() {
    const errors: Record<string, number> = {};
    const samples = new Set<string>();
    let processed = 0;
    for (const slot of this.slots) {
      for (const s of slot.stats.values()) {
        processed += s.processed;
        for (const [k, n] of Object.entries(s.errors)) errors[k] = (errors[k] ?? 0) + n;
        for (const line of s.samples) if (samples.size < 30) samples.add(line);
      }
    }
    return { processed, errors, samples: [...samples] };
  }
}

/** Single-row write transactions of each quiet phase. */
const QUIET_WRITES = 1000;

/**
 * After the run (and its verification): NOTIFYs sent by {@link QUIET_WRITES} single-row INSERT
 * transactions once every listener has stopped, then once the only listener (idle, its wake-up flags
 * set) was SIGKILLed. Both must be 0: flags of a listener that is gone cost writers nothing.
 */
async function quietPhases(
  admin: Admin,
  counter: NotifyCounter,
  env: Record<string, string>,
  log: (line: string) => void,
): Promise<{ afterStop: number; afterKill: number }> {
  const writeAndCount = async () => {
    await counter.settle(admin);
    const before = counter.count;
    for (let i = 0; i < QUIET_WRITES; i++) {
      await admin(`INSERT INTO chaos_items (tag, producer, big, meta) VALUES ($1, -1, 0, '{}')`, [
        `quiet.${i}`,
      ]);
    }
    await counter.settle(admin);
    return counter.count - before;
  };
  const afterStop = await writeAndCount();
  log(`chaos: ${afterStop} NOTIFYs for ${QUIET_WRITES} writes after every listener stopped`);

  const solo = new Workers(1);
  solo.env = env;
  solo.spareCount = 0;
  await solo.startAll();
  const deadline = Date.now() + 60_000;
  // Idle: its flags are set for both channels and the writes above are handled.
  for (;;) {
    const [row] = await admin(
      `SELECT (SELECT count(*) FROM pgpubsub.wakeups WHERE idle)::int AS flags,
              ((SELECT count(*) FROM pgpubsub.notifications WHERE status = 'pending') + (SELECT coalesce(sum(count), 0) FROM pgpubsub.packed))::int AS pending`,
    );
    if ((row?.flags as number) >= 2 && row?.pending === 0) break;
    if (Date.now() > deadline) throw new Error(`the solo listener did not go idle: ${JSON.stringify(row)}`);
    await sleep(50);
  }
  solo.killAll();
  for (;;) {
    const [row] = await admin(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'chaos-worker-%'`,
    );
    if (row?.n === 0) break;
    if (Date.now() > deadline) throw new Error('the killed listener kept its sessions');
    await sleep(50);
  }
  const afterKill = await writeAndCount();
  log(`chaos: ${afterKill} NOTIFYs for ${QUIET_WRITES} writes after the only (idle) listener was SIGKILLed`);
  return { afterStop, afterKill };
}

/** Retries a statement on the admin connection while PostgreSQL is restarting. */
async function retry<T>(what: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await what();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

/**
 * The chaos run: producers commit notifications through a fault-injecting proxy while listener worker
 * processes handle them; a seeded fault driver kills workers, terminates their backends, resets and
 * black-holes their connections and restarts PostgreSQL. Then it waits for the queue to drain and
 * checks that every committed notification had exactly one effect and nothing else happened.
 */
export async function runChaos(partial: Partial<ChaosOptions> = {}): Promise<ChaosReport> {
  const options: ChaosOptions = { ...DEFAULT_OPTIONS, ...partial };
  const started = performance.now();
  const server: PgServer = await startPg(options.databaseUrl, { max_connections: '200' });
  const workers = new Workers(options.workers);
  // Ctrl-C or a timeout: leave no worker, server or data directory behind.
  const interrupt = (signal: NodeJS.Signals) => {
    workers.killAll();
    void server.stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    return await chaosOn(server, workers, options, started);
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    await server.stop();
  }
}

async function chaosOn(
  server: PgServer,
  workers: Workers,
  options: ChaosOptions,
  started: number,
): Promise<ChaosReport> {
  const { log, seed } = options;
  const rng = createRng(seed);
  log(
    `chaos: seed ${seed}, ${options.notifications} notifications over ${options.durationMs} ms, ${options.workers} workers × concurrency ${options.concurrency}, ${options.producers} producers`,
  );

  const dbName = `chaos_${seed}_${process.pid}`;
  const bootstrap = new pg.Client({ connectionString: server.url });
  await bootstrap.connect();
  await bootstrap.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await bootstrap.query(`CREATE DATABASE "${dbName}"`);
  if (options.isolation) {
    await bootstrap.query(
      `ALTER DATABASE "${dbName}" SET default_transaction_isolation = '${options.isolation}'`,
    );
  }
  await bootstrap.end();
  const dbUrl = withDatabase(server.url, dbName);
  const adminConn = adminPool(dbUrl);
  const admin = adminConn.query;
  for (const statement of chaosSetupSql()) await admin(statement);
  log(
    `chaos: database ${dbUrl}${options.isolation ? ` (default_transaction_isolation ${options.isolation})` : ''}`,
  );
  const counter = await NotifyCounter.start(dbUrl, ['chaos_items', 'chaos_jobs']);
  let notifiesWithListeners = 0;

  const proxy = await ChaosProxy.start(server.host, server.port);
  const viaProxy = new URL(dbUrl);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);

  workers.env = {
    CHAOS_URL: viaProxy.toString(),
    CHAOS_CONCURRENCY: String(options.concurrency),
    CHAOS_POLL_MS: String(options.pollIntervalMs),
  };
  workers.diagnose = async (index) =>
    JSON.stringify(
      await admin(
        `SELECT pid, state, wait_event, now() - xact_start AS xact_age, left(query, 60) AS q FROM pg_stat_activity WHERE application_name = $1`,
        [`chaos-worker-${index}`],
      ),
    );
  const ledger: ProducerLedger = emptyLedger();
  const faults: Record<FaultKind, number> = {
    kill: 0,
    terminate: 0,
    reset: 0,
    'blackhole-heal': 0,
    'blackhole-sever': 0,
    restart: 0,
    'kill-during-restart': 0,
  };
  const cut = { terminatedBackends: 0, resetConnections: 0, blackholedConnections: 0 };
  let restartDownMs: number | null = null;
  const violations: string[] = [];
  let lastFaultEnd = 0;
  let productionMs = 0;
  let drainAfterLastFaultMs: number | null = null;
  let backlogAtLastFault = 0;

  try {
    await workers.startAll();
    log(`chaos: ${options.workers} workers ready after ${Math.round(performance.now() - started)} ms`);

    const pace: Pace = {
      target: options.notifications,
      durationMs: options.durationMs,
      startedAt: performance.now(),
      reserved: 0,
    };
    const producers = Array.from(
      { length: options.producers },
      (_, i) => new Producer(i, viaProxy.toString(), admin, rng.fork(`producer${i}`), ledger, pace),
    );
    let producing = true;
    const production = Promise.all(producers.map((p) => p.run())).finally(() => {
      producing = false;
      productionMs = performance.now() - pace.startedAt;
    });

    // The fault driver: one tick a second while producing (and at least for durationMs).
    const faultRng = rng.fork('faults');
    const plan = {
      heal: options.durationMs * (0.2 + 0.1 * faultRng.next()),
      restart: options.durationMs * (0.45 + 0.1 * faultRng.next()),
      sever: options.durationMs * (0.7 + 0.1 * faultRng.next()),
    };
    const done = { heal: false, restart: false, sever: false };
    const background: Promise<unknown>[] = [];
    let restarting = false;
    const mark = () => {
      lastFaultEnd = performance.now();
    };
    const terminate = async () => {
      const [row] = await admin(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
         WHERE application_name LIKE 'chaos-worker-%' AND pid <> pg_backend_pid()`,
      );
      return (row?.n as number) ?? 0;
    };
    const blackhole = (kind: 'heal' | 'sever', r: Rng) => {
      const ms = r.int(2000, 4000);
      faults[`blackhole-${kind}`]++;
      log(`chaos: black hole (${kind}) for ${ms} ms`);
      background.push(
        proxy.blackhole(ms, kind).then((n) => {
          cut.blackholedConnections += n;
          mark();
        }),
      );
    };
    const on = (kind: NonNullable<ChaosOptions['faults']>[number]) =>
      !options.faults || options.faults.includes(kind);
    while (producing || performance.now() - pace.startedAt < options.durationMs) {
      await sleep(1000);
      const elapsed = performance.now() - pace.startedAt;
      const slot = workers.slots[faultRng.int(0, workers.slots.length - 1)]!;
      if (on('kill')) {
        await workers.kill(slot);
        faults.kill++;
        if (restarting) faults['kill-during-restart']++;
        mark();
      }
      if (faultRng.chance(0.15) && on('terminate')) {
        try {
          cut.terminatedBackends += await terminate();
          faults.terminate++;
          mark();
        } catch {
          // PostgreSQL is down (restart): nothing to terminate.
        }
      }
      if (faultRng.chance(0.12) && on('reset')) {
        cut.resetConnections += proxy.resetAll();
        faults.reset++;
        mark();
      }
      if (!done.heal && elapsed >= plan.heal && on('blackhole')) {
        done.heal = true;
        blackhole('heal', faultRng);
      }
      if (!done.sever && elapsed >= plan.sever && on('blackhole')) {
        done.sever = true;
        blackhole('sever', faultRng);
      }
      if (!done.restart && elapsed >= plan.restart && on('restart')) {
        done.restart = true;
        if (server.canRestart) {
          const downMs = faultRng.int(500, 2000);
          log(`chaos: restarting PostgreSQL (immediate shutdown, ${downMs} ms down)`);
          restarting = true;
          faults.restart++;
          background.push(
            server.restart('immediate', downMs).then((r) => {
              restartDownMs = Math.round(r.downMs);
              restarting = false;
              mark();
              log(`chaos: PostgreSQL back after ${restartDownMs} ms`);
            }),
          );
        } else {
          log('chaos: external PostgreSQL, restart fault skipped');
        }
      }
      if (Math.round(elapsed / 1000) % 5 === 0 && process.env.CHAOS_DEBUG) {
        log(`chaos: producers ${producers.map((p) => p.status).join(' | ')}`);
        const rows = await admin(
          `SELECT pid, application_name, state, wait_event, now() - xact_start AS age, left(query, 60) AS q FROM pg_stat_activity WHERE application_name LIKE 'chaos-producer%'`,
        ).catch(() => []);
        log(`chaos: producer backends ${JSON.stringify(rows)}`);
      }
      if (Math.round(elapsed / 1000) % 5 === 0) {
        const [done] = await admin('SELECT count(*)::int AS n FROM chaos_effects').catch(() => [{ n: '?' }]);
        log(
          `chaos: ${Math.round(elapsed / 1000)} s, ${[...ledger.committed.values()].reduce((n, k) => n + k.length, 0)} notifications committed, ${done?.n} handled, faults ${JSON.stringify(faults)}`,
        );
      }
    }
    await Promise.all(background);
    await production;
    const [left] = await retry(() =>
      admin(
        `SELECT (count(*) FILTER (WHERE status = 'pending') + (SELECT coalesce(sum(count), 0) FROM pgpubsub.packed))::int AS pending FROM pgpubsub.notifications`,
      ),
    );
    backlogAtLastFault = left!.pending as number;
    log(
      `chaos: production done in ${Math.round(productionMs)} ms; last fault ended; draining ${backlogAtLastFault} pending`,
    );

    // Drain: nothing pending any more (claimed rows stay until their transaction commits).
    const drainStart = performance.now();
    let pending = -1;
    while (performance.now() - drainStart < options.drainTimeoutMs) {
      const [row] = await retry(() =>
        admin(
          `SELECT (count(*) FILTER (WHERE status = 'pending') + (SELECT coalesce(sum(count), 0) FROM pgpubsub.packed))::int AS pending FROM pgpubsub.notifications`,
        ),
      );
      pending = row!.pending as number;
      if (pending === 0) break;
      await sleep(100);
    }
    if (pending === 0) drainAfterLastFaultMs = Math.round(performance.now() - lastFaultEnd);
    else violations.push(`queue did not drain within ${options.drainTimeoutMs} ms: ${pending} pending`);
    await counter.settle(admin);
    notifiesWithListeners = counter.count;
    await workers.stopAll(options.stopTimeoutMs);
    await Promise.all(producers.map((p) => p.close()));
  } finally {
    await workers.stopAll(5000).catch(() => {});
    await proxy.close().catch(() => {});
  }

  // Verification, on a direct connection.
  const { figures: f, extraAttempts } = await verifyDelivery(admin, ledger, violations);
  for (const line of workers.unclean) violations.push(line);
  const quiet = await quietPhases(admin, counter, { ...workers.env, CHAOS_URL: dbUrl }, log);
  for (const [phase, n] of Object.entries(quiet)) {
    if (n > 0) violations.push(`${n} NOTIFYs for ${QUIET_WRITES} writes ${phase} (expected 0)`);
  }
  await counter.close();
  await adminConn.end();
  if (!server.canRestart && violations.length === 0) {
    const drop = new pg.Client({ connectionString: server.url });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await drop.end();
  }

  const totals = workers.totals();
  return {
    seed,
    options: (({ log: _log, ...rest }) => rest)(options),
    notifications: f.expected,
    transactions: {
      committed: ledger.committed.size,
      acknowledged: ledger.acknowledged.size,
      rolledBackOnPurpose: ledger.rolledBack.size,
      failedByFault: ledger.notCommitted.size,
      commitOutcomeUnknown: ledger.commitUnknown,
    },
    faults,
    cut,
    restartDownMs,
    effects: f.effects,
    duplicates: { byNotificationId: f.dup_ids, byKey: f.dup_keys, extraRows: f.extra_rows },
    lost: f.lost!,
    phantoms: f.phantoms!,
    contextMismatches: f.ctx_mismatch!,
    pending: f.pending!,
    failed: f.failed,
    extraAttempts,
    drainAfterLastFaultMs,
    backlogAtLastFault,
    productionMs: Math.round(productionMs),
    totalMs: Math.round(performance.now() - started),
    workerErrors: totals.errors,
    workerSamples: totals.samples,
    workerExits: {
      clean: workers.clean,
      unclean: workers.unclean,
      driverCrashes: workers.driverCrashes,
      driverTypeCrashes: workers.driverTypeCrashes,
      slowStops: workers.slowStops,
    },
    producerErrors: Object.fromEntries(ledger.errors),
    notifies: {
      withListeners: {
        notifies: notifiesWithListeners,
        writes: f.expected,
        per1000: per1000(notifiesWithListeners, f.expected),
      },
      afterStop: {
        notifies: quiet.afterStop,
        writes: QUIET_WRITES,
        per1000: per1000(quiet.afterStop, QUIET_WRITES),
      },
      afterKill: {
        notifies: quiet.afterKill,
        writes: QUIET_WRITES,
        per1000: per1000(quiet.afterKill, QUIET_WRITES),
      },
    },
    violations,
    warnings: [
      ...(workers.driverCrashes > 0
        ? [
            `${workers.driverCrashes} worker processes crashed in postgres.js (nextWrite on a closed socket, porsager/postgres#1154) and were restarted`,
          ]
        : []),
      ...(workers.driverTypeCrashes > 0
        ? [
            `${workers.driverTypeCrashes} worker processes crashed on postgres.js's unhandled array-type lookup rejection (porsager/postgres#1192) and were restarted`,
          ]
        : []),
      ...workers.slowStops,
    ],
  };
}

/** What {@link verifyDelivery} counted. */
export interface DeliveryFigures {
  expected: number;
  markers: number;
  effects: number;
  dup_ids: number;
  extra_rows: number;
  dup_keys: number;
  lost: number;
  phantoms: number;
  ctx_mismatch: number;
  pending: number;
  failed: number;
}

/**
 * Checks a finished run: every committed notification (per the marker rows) has exactly one effect,
 * nothing else has one, nothing is left, and the producers' ledger agrees with the markers. Pushes
 * a line per broken guarantee onto `violations`.
 */
export async function verifyDelivery(
  admin: Admin,
  ledger: ProducerLedger,
  violations: string[],
): Promise<{ figures: DeliveryFigures; extraAttempts: number }> {
  const [figures] = await admin(`
    WITH expected AS (
      SELECT m.tx, k.key FROM chaos_markers m, jsonb_array_elements_text(m.keys) AS k(key)
    ), dup_id AS (
      SELECT notification_id, count(*) AS n FROM chaos_effects GROUP BY 1 HAVING count(*) > 1
    ), dup_key AS (
      SELECT key, count(*) AS n FROM chaos_effects GROUP BY 1 HAVING count(*) > 1
    )
    SELECT
      (SELECT count(*)::int FROM expected) AS expected,
      (SELECT count(*)::int FROM chaos_markers) AS markers,
      (SELECT count(*)::int FROM chaos_effects) AS effects,
      (SELECT count(*)::int FROM dup_id) AS dup_ids,
      (SELECT coalesce(sum(n - 1), 0)::int FROM dup_id) AS extra_rows,
      (SELECT count(*)::int FROM dup_key) AS dup_keys,
      (SELECT count(*)::int FROM expected x WHERE NOT EXISTS (SELECT 1 FROM chaos_effects e WHERE e.key = x.key)) AS lost,
      (SELECT count(*)::int FROM chaos_effects e WHERE NOT EXISTS (SELECT 1 FROM expected x WHERE x.key = e.key)) AS phantoms,
      (SELECT count(*)::int FROM chaos_effects e WHERE EXISTS (SELECT 1 FROM expected x WHERE x.key = e.key)
         AND NOT EXISTS (SELECT 1 FROM expected x WHERE x.key = e.key AND x.tx = e.ctx_tx)) AS ctx_mismatch,
      ((SELECT count(*) FROM pgpubsub.notifications WHERE status = 'pending') + (SELECT coalesce(sum(count), 0) FROM pgpubsub.packed))::int AS pending,
      (SELECT count(*)::int FROM pgpubsub.notifications WHERE status = 'failed') AS failed`);
  const f = figures as DeliveryFigures;
  const markerRows = await admin('SELECT tx FROM chaos_markers');
  const markerSet = new Set(markerRows.map((r) => r.tx as string));
  const attemptRows = await admin('SELECT key, attempt FROM chaos_effects');
  const extraAttempts = attemptRows.filter(
    (r) => (r.attempt as number) > (failsFirstAttempt(r.key as string) ? 2 : 1),
  ).length;
  const failedSamples =
    f.failed > 0
      ? await admin(
          `SELECT id, channel, attempts, left(last_error, 200) AS e FROM pgpubsub.notifications WHERE status = 'failed' LIMIT 5`,
        )
      : [];
  const ledgerKeys = [...ledger.committed.values()].reduce((n, k) => n + k.length, 0);
  const acknowledgedMissing = [...ledger.acknowledged].filter((tx) => !markerSet.has(tx));
  const notCommittedPresent = [...ledger.notCommitted].filter((tx) => markerSet.has(tx));
  const rolledBackPresent = [...ledger.rolledBack].filter((tx) => markerSet.has(tx));
  const check = (ok: boolean, text: string) => ok || violations.push(text);
  check(f.dup_ids === 0, `${f.dup_ids} notifications had more than one effect (${f.extra_rows} extra rows)`);
  check(f.dup_keys === 0, `${f.dup_keys} notification keys had more than one effect`);
  check(f.lost === 0, `${f.lost} committed notifications have no effect (lost)`);
  check(f.phantoms === 0, `${f.phantoms} effects belong to no committed transaction (phantoms)`);
  check(f.ctx_mismatch === 0, `${f.ctx_mismatch} effects saw another transaction's context`);
  check(f.pending === 0, `${f.pending} notifications still pending`);
  check(
    f.failed === 0,
    `${f.failed} notifications failed: ${failedSamples.map((r) => `${r.id} ${r.channel} ×${r.attempts} ${r.e}`).join(' | ')}`,
  );
  check(f.effects === f.expected, `effects ${f.effects} ≠ committed notifications ${f.expected}`);
  check(
    f.markers === ledger.committed.size,
    `markers ${f.markers} ≠ transactions the producers saw commit ${ledger.committed.size}`,
  );
  check(f.expected === ledgerKeys, `marker keys ${f.expected} ≠ producer ledger keys ${ledgerKeys}`);
  check(
    acknowledgedMissing.length === 0,
    `${acknowledgedMissing.length} acknowledged commits are missing: ${acknowledgedMissing.slice(0, 5).join(', ')}`,
  );
  check(
    notCommittedPresent.length === 0,
    `${notCommittedPresent.length} transactions resolved as not committed did commit`,
  );
  check(rolledBackPresent.length === 0, `${rolledBackPresent.length} rolled-back transactions left a marker`);
  return { figures: f, extraAttempts };
}
