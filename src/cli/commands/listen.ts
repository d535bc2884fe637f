import type { CliCommand } from '../command.ts';
import { resolveDatabaseUrl } from '../database.ts';
import { exitCodeFor, printFatal } from '../exit-codes.ts';
import { LISTEN_OPTIONS, type ListenArgs, parseListenArgs } from '../listen/args.ts';
import { resolveModulePath } from '../listen/module.ts';
import { supervise } from '../listen/supervisor.ts';
import { usage } from '../listen/usage.ts';
import { runListener } from '../listen/worker.ts';
import { createLogger } from '../log.ts';

/** `drizzle-pgpubsub listen <module> [options]`. */
export const command: CliCommand = {
  usage,
  options: LISTEN_OPTIONS,
  positionals: true,
  async run(parsed) {
    const args = parseListenArgs(parsed);
    if (args.processes !== undefined && !args.worker) return runSupervisor(args);
    return exit(await runListener(args));
  },
};

function exit(code: number): never {
  process.exit(code);
}

async function runSupervisor(args: ListenArgs & { childArgv: string[] }): Promise<never> {
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
  const code = await supervise({
    processes: args.processes!,
    script,
    childArgv: ['listen', ...args.childArgv],
    log,
    shutdownTimeoutMs: args.shutdownTimeoutMs,
    maxRestarts: args.maxRestarts,
    restartDelayMs: args.restartDelayMs,
  });
  return exit(code);
}
