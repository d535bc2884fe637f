import { type ChildProcess, fork } from 'node:child_process';
import type { SystemId, Variant } from '../systems/types.ts';
import { workerBuild } from './build.ts';

/** What a worker process reports about itself. */
export interface WorkerStats {
  /** Handler starts. */
  handled: number;
  /** Distinct job ids handled. */
  distinct: number;
  /** Handler starts of a job id already handled in this process. */
  duplicates: number;
  peakRssMb: number;
  peakHeapMb: number;
  /** Before the worker started (node, jiti, the libraries loaded). */
  baseRssMb: number;
  baseHeapMb: number;
  cpuMs: number;
  /** Memory once a second while sampling: [seconds since start, RSS MB, heap used MB]. */
  memory: [number, number, number][];
}

export type ChildRequest =
  | { type: 'start'; url: string; variant: Variant | NoWorker; sampleMs?: number; expected?: number }
  | { type: 'cpu'; reset?: boolean }
  | { type: 'stats' }
  | { type: 'stop' };

export type ChildReply =
  | { type: 'ready' }
  | { type: 'started'; startMs: number }
  | { type: 'progress'; handled: number }
  | { type: 'cpu'; cpuMs: number }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'stopped'; stats: WorkerStats }
  | { type: 'error'; message: string };

/** A process that loads everything but starts no worker (W3's control). */
export interface NoWorker {
  key: string;
  label: string;
  system: 'none';
}

/** A forked bench/worker.ts, driven over IPC. */
export class WorkerProcess {
  /** Latest handler-start count the process reported. */
  handled = 0;
  private readonly child: ChildProcess;
  private readonly waiting: { type: ChildReply['type']; resolve: (m: any) => void }[] = [];
  private readonly progress = new Set<() => void>();
  private exited = false;
  private failure: Error | undefined;

  /** Set once the process failed (crashed, or its worker reported an error). */
  get error(): Error | undefined {
    return this.failure;
  }

  private constructor(
    worker: string,
    label: string,
    system: SystemId | 'none',
    nodeFlags: string[] = [],
    env: Record<string, string> = {},
  ) {
    this.child = fork(worker, [], {
      // Plain node on the transpiled worker (see build.ts). BENCH_CPU_PROF=<dir> writes a V8 CPU
      // profile of every worker process (open it in Chrome DevTools); BENCH_NODE_FLAGS adds node flags
      // (e.g. --trace-gc).
      execArgv: [
        ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []),
        ...(process.env.BENCH_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? []),
        ...nodeFlags,
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: {
        ...process.env,
        ...env,
        BENCH_WORKER: label,
        ...(system === 'none' ? {} : { BENCH_SYSTEM: system }),
      },
    });
    this.child.on('message', (m: ChildReply) => this.dispatch(m));
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      if (code !== 0 && signal !== 'SIGKILL')
        this.fail(new Error(`worker ${label} exited with ${code ?? signal}`));
    });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const w of this.waiting.splice(0)) w.resolve(Promise.reject(error));
    for (const p of this.progress) p();
  }

  private dispatch(m: ChildReply): void {
    if (m.type === 'progress') {
      this.handled = m.handled;
      for (const p of this.progress) p();
      return;
    }
    if (m.type === 'error') {
      this.fail(new Error(`worker process: ${m.message}`));
      return;
    }
    const index = this.waiting.findIndex((w) => w.type === m.type);
    if (index >= 0) this.waiting.splice(index, 1)[0]!.resolve(m);
  }

  private next<T extends ChildReply['type']>(type: T): Promise<Extract<ChildReply, { type: T }>> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve) => this.waiting.push({ type, resolve }));
  }

  private async request<T extends ChildReply['type']>(message: ChildRequest, reply: T) {
    const answer = this.next(reply);
    this.child.send(message);
    return answer;
  }

  /** Forks a worker process for `system`; resolves once it has loaded that system's modules. */
  static async spawn(
    label: string,
    system: SystemId | 'none',
    nodeFlags: string[] = [],
    env: Record<string, string> = {},
  ): Promise<WorkerProcess> {
    const w = new WorkerProcess(await workerBuild(), label, system, nodeFlags, env);
    await w.next('ready');
    return w;
  }

  /**
   * Starts the worker; resolves when its start() returned, with how long that took (ms). `sampleMs`:
   * memory sampling interval (0: off); `expected`: handler starts at which to report progress at once.
   */
  async start(
    url: string,
    variant: Variant | NoWorker,
    { sampleMs, expected }: { sampleMs?: number | undefined; expected?: number | undefined } = {},
  ): Promise<number> {
    const m = await this.request(
      {
        type: 'start',
        url,
        variant,
        ...(sampleMs === undefined ? {} : { sampleMs }),
        ...(expected === undefined ? {} : { expected }),
      },
      'started',
    );
    return m.startMs;
  }

  /** Calls `listener` on every progress report (until the returned function is called). */
  onProgress(listener: () => void): () => void {
    this.progress.add(listener);
    return () => this.progress.delete(listener);
  }

  async cpuMs(reset = false): Promise<number> {
    return (await this.request({ type: 'cpu', reset }, 'cpu')).cpuMs;
  }

  async stats(): Promise<WorkerStats> {
    return (await this.request({ type: 'stats' }, 'stats')).stats;
  }

  /** Stops the worker gracefully and waits for the process to exit. */
  async stop(): Promise<WorkerStats> {
    const exited = new Promise<void>((resolve) =>
      this.exited ? resolve() : this.child.once('exit', () => resolve()),
    );
    const { stats } = await this.request({ type: 'stop' }, 'stopped');
    await exited;
    return stats;
  }

  /** Kills the process without a goodbye (its connections drop; no shutdown queries). */
  async kill(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGKILL');
    await exited;
  }
}

/** Resolves when the summed `handled` of `workers` reaches `target`, or rejects after `timeoutMs`. */
export function whenHandled(workers: WorkerProcess[], target: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const offs: (() => void)[] = [];
    const done = (error?: Error) => {
      clearTimeout(timer);
      for (const off of offs) off();
      error ? reject(error) : resolve();
    };
    const check = () => {
      const failed = workers.find((w) => w.error);
      if (failed) return done(failed.error);
      const sum = workers.reduce((s, w) => s + w.handled, 0);
      if (sum >= target) done();
    };
    const timer = setTimeout(() => {
      const sum = workers.reduce((s, w) => s + w.handled, 0);
      done(new Error(`timed out after ${timeoutMs} ms with ${sum}/${target} jobs handled`));
    }, timeoutMs);
    for (const w of workers) offs.push(w.onProgress(check));
    check();
  });
}
