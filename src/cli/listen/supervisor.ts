import { type ChildProcess, fork } from 'node:child_process';
import { formatDuration } from '../../duration.ts';
import { EXIT, errorMessage } from '../exit-codes.ts';
import type { Logger } from '../log.ts';

/** Options of {@link supervise}. */
export interface SuperviseOptions {
  /** Worker processes to keep running. */
  processes: number;
  /** The CLI script to fork (`process.argv[1]`); `process.execArgv` is passed on by `fork`. */
  script: string;
  /** Arguments of each worker: the supervisor's own minus supervisor-only flags, plus `--worker`. */
  childArgv: string[];
  log: Logger;
  /** The workers' shutdown timeout; the supervisor kills workers still alive 10 s after it. */
  shutdownTimeoutMs: number;
  /** Consecutive crashes of one worker that are restarted; one more and the supervisor gives up. */
  maxRestarts: number;
  /** First restart delay, doubled per consecutive crash, at most `maxRestartDelayMs`. */
  restartDelayMs: number;
  maxRestartDelayMs?: number;
  /** A worker that ran this long before it crashed starts its crash count over. Default 60 s. */
  stableAfterMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Extra Node flags of each worker (after `process.execArgv`), e.g. the memory cap. */
  execArgv?: string[];
  /** Receives a function that lists the running workers (the metrics endpoint asks each over IPC). */
  onWorkers?: (live: () => ChildProcess[]) => void;
}

interface Worker {
  index: number;
  child: ChildProcess | undefined;
  startedAt: number;
  crashes: number;
  timer: NodeJS.Timeout | undefined;
}

/** Environment variable holding a worker's index (1…N); a restarted worker keeps its index. */
export const WORKER_INDEX_ENV = 'PGPUBSUB_WORKER_INDEX';
/** Environment variable holding the number of workers. */
export const WORKER_COUNT_ENV = 'PGPUBSUB_WORKER_COUNT';

/**
 * Runs `processes` workers (`fork` of the same CLI) until SIGTERM/SIGINT, then asks each to stop
 * (IPC message, or SIGTERM when its channel is gone), waits for all of them and resolves to 0.
 * A crashed worker is restarted with exponential backoff; after `maxRestarts` consecutive crashes,
 * or when a worker reports a configuration error (exit 78), the others are stopped and the
 * supervisor resolves non-zero. A second signal SIGKILLs the workers. Workers watch their IPC
 * channel, so they also stop by themselves if the supervisor is SIGKILLed.
 */
export function supervise(options: SuperviseOptions): Promise<number> {
  const { log, processes, maxRestarts, restartDelayMs } = options;
  const maxDelay = options.maxRestartDelayMs ?? 30_000;
  const stableAfterMs = options.stableAfterMs ?? 60_000;
  const workers: Worker[] = Array.from({ length: processes }, (_, i) => ({
    index: i + 1,
    child: undefined,
    startedAt: 0,
    crashes: 0,
    timer: undefined,
  }));
  let stopping: string | undefined;
  let exitCode: number = EXIT.ok;
  let signals = 0;
  let hardTimer: NodeJS.Timeout | undefined;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });

  const spawn = (w: Worker) => {
    const child = fork(options.script, options.childArgv, {
      execArgv: [...process.execArgv, ...(options.execArgv ?? [])],
      env: {
        ...(options.env ?? process.env),
        [WORKER_INDEX_ENV]: String(w.index),
        [WORKER_COUNT_ENV]: String(processes),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    w.child = child;
    w.startedAt = Date.now();
    log.info({ worker: w.index, workerPid: child.pid }, `worker ${w.index} started (pid ${child.pid})`);
    child.on('exit', (code, signal) => onExit(w, child, code, signal));
    child.on('error', (error) => {
      log.error({ worker: w.index, err: error }, `worker ${w.index}: ${errorMessage(error)}`);
      if (child.pid === undefined) onExit(w, child, EXIT.failure, null); // never started: no 'exit' follows
    });
  };

  const onExit = (w: Worker, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null) => {
    if (w.child !== child) return;
    w.child = undefined;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const who = `worker ${w.index} (pid ${child.pid})`;
    if (stopping !== undefined) {
      if (code !== 0) exitCode ||= EXIT.failure;
      (code === 0 ? log.info : log.warn)(
        { worker: w.index, workerPid: child.pid, code, signal },
        `${who} ${code === 0 ? 'stopped' : how}`,
      );
      checkDone();
      return;
    }
    if (code === EXIT.config) {
      log.error(
        { worker: w.index, workerPid: child.pid, code },
        `${who} exited with a configuration error (see its message above); not restarting`,
      );
      exitCode = EXIT.config;
      beginStop('a worker cannot start');
      return;
    }
    if (Date.now() - w.startedAt >= stableAfterMs) w.crashes = 0;
    w.crashes++;
    if (w.crashes > maxRestarts) {
      log.error(
        { worker: w.index, workerPid: child.pid, code, signal, crashes: w.crashes },
        `${who} ${how}: ${w.crashes} crashes in a row, restart limit (${maxRestarts}) reached; giving up. Fix the cause (see the messages above) and start again.`,
      );
      exitCode = EXIT.failure;
      beginStop('restart limit reached');
      return;
    }
    const delay = Math.min(maxDelay, restartDelayMs * 2 ** (w.crashes - 1));
    log.warn(
      { worker: w.index, workerPid: child.pid, code, signal, crashes: w.crashes, delayMs: delay },
      `${who} ${how}; restarting in ${formatDuration(delay)} (restart ${w.crashes} of ${maxRestarts})`,
    );
    w.timer = setTimeout(() => {
      w.timer = undefined;
      if (stopping === undefined) spawn(w);
    }, delay);
  };

  const ask = (child: ChildProcess) => {
    if (child.connected) {
      child.send({ type: 'shutdown' }, (error) => {
        if (error) child.kill('SIGTERM');
      });
    } else {
      child.kill('SIGTERM');
    }
  };

  const killAll = (signal: NodeJS.Signals) => {
    for (const w of workers) w.child?.kill(signal);
  };

  const checkDone = () => {
    if (stopping === undefined || workers.some((w) => w.child)) return;
    clearTimeout(hardTimer);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('exit', onProcessExit);
    log.info(exitCode === 0 ? 'all workers stopped' : `all workers stopped; exiting with code ${exitCode}`);
    finish(exitCode);
  };

  const beginStop = (reason: string) => {
    if (stopping !== undefined) return;
    stopping = reason;
    for (const w of workers) {
      clearTimeout(w.timer);
      w.timer = undefined;
    }
    const live = workers.filter((w) => w.child);
    if (live.length > 0) {
      log.info(
        `stopping (${reason}): asking ${live.length} worker${live.length === 1 ? '' : 's'} to finish in-flight work (up to ${formatDuration(options.shutdownTimeoutMs)})`,
      );
    }
    for (const w of live) ask(w.child!);
    hardTimer = setTimeout(() => {
      log.error(
        `workers still running ${formatDuration(options.shutdownTimeoutMs + 10_000)} after the stop request: killing them`,
      );
      exitCode = EXIT.failure;
      killAll('SIGKILL');
    }, options.shutdownTimeoutMs + 10_000);
    checkDone();
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log.warn(`${signal} again: killing the workers now (unfinished handlers roll back; nothing is lost)`);
      exitCode = EXIT.failure;
      killAll('SIGKILL');
      return;
    }
    beginStop(signal);
  };
  // Last resort if the supervisor dies of an exception: workers also stop when their IPC channel closes.
  const onProcessExit = () => killAll('SIGTERM');

  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('exit', onProcessExit);
  options.onWorkers?.(() => workers.flatMap((w) => (w.child ? [w.child] : [])));
  log.info(`supervisor starting ${processes} worker${processes === 1 ? '' : 's'}`);
  for (const w of workers) spawn(w);
  return done;
}
