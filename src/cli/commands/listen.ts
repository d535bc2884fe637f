import type { CliCommand } from '../command.ts';
import { resolveDatabaseUrl } from '../database.ts';
import { exitCodeFor, printFatal } from '../exit-codes.ts';
import { LISTEN_OPTIONS, type ListenArgs, parseListenArgs } from '../listen/args.ts';
import { CAPPED_ENV, memoryCapFlags, runCapped } from '../listen/memory-cap.ts';
import { usage } from '../listen/usage.ts';

/** `drizzle-pgpubsub listen <module> [options]`. */
export const command: CliCommand = {
  usage,
  options: LISTEN_OPTIONS,
  positionals: true,
  async run(parsed) {
    const args = parseListenArgs(parsed);
    if (args.processes !== undefined && !args.worker) return runSupervisor(args);
    // V8 sizes the young generation only at start-up: one re-start with the cap (docs/operations.md).
    const flags = memoryCapFlags(args.semiSpaceMb);
    if (!args.worker && flags.length > 0 && process.env[CAPPED_ENV] === undefined) {
      const script = process.argv[1];
      if (script !== undefined) return exit(await runCapped(script, process.argv.slice(2), flags));
    }
    // Loaded only now: the process that re-starts itself above stays small (~45 MB on Node 20).
    const { runListener } = await import('../listen/worker.ts');
    return exit(await runListener(args));
  },
};

function exit(code: number): never {
  process.exit(code);
}

async function runSupervisor(args: ListenArgs & { childArgv: string[] }): Promise<never> {
  const [{ createLogger }, { resolveModulePath }, prometheus, { supervise }, { metricsUrl }] =
    await Promise.all([
      import('../log.ts'),
      import('../listen/module.ts'),
      import('../listen/prometheus.ts'),
      import('../listen/supervisor.ts'),
      import('../listen/worker.ts'),
    ]);
  const { collectFromWorkers, loadPromClient, serveMetrics } = prometheus;
  const log = createLogger({
    level: args.logLevel,
    json: args.json,
    bound: { role: 'supervisor', pid: process.pid },
  });
  try {
    // Fail fast on what every worker would fail on, instead of N identical errors.
    resolveDatabaseUrl(args.databaseUrl);
    resolveModulePath(args.module);
  } catch (error) {
    printFatal(error, args.json);
    return exit(exitCodeFor(error));
  }
  const script = process.argv[1];
  if (script === undefined) throw new Error('cannot find the CLI script to fork');
  let live: () => import('node:child_process').ChildProcess[] = () => [];
  let server: import('node:http').Server | undefined;
  if (args.metricsPort !== undefined) {
    try {
      const client = await loadPromClient();
      server = await serveMetrics(args.metricsHost, args.metricsPort, () =>
        collectFromWorkers(client, live()),
      );
    } catch (error) {
      printFatal(error, args.json);
      return exit(exitCodeFor(error));
    }
    log.info(`metrics at ${metricsUrl(args.metricsHost, server)} (the sum over the workers)`);
  }
  const code = await supervise({
    onWorkers: (list) => {
      live = list;
    },
    processes: args.processes!,
    script,
    childArgv: ['listen', ...args.childArgv],
    log,
    shutdownTimeoutMs: args.shutdownTimeoutMs,
    maxRestarts: args.maxRestarts,
    restartDelayMs: args.restartDelayMs,
    execArgv: memoryCapFlags(args.semiSpaceMb),
  });
  server?.close();
  return exit(code);
}
