import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';

const run = promisify(execFile);

/** pgbench on this machine, if any (`PGBENCH` overrides). */
export async function findPgbench(): Promise<string | undefined> {
  const candidate = process.env.PGBENCH ?? 'pgbench';
  try {
    await run(candidate, ['--version']);
    return candidate;
  } catch {
    return undefined;
  }
}

/**
 * `clients` connections each commit `statement` in a loop for `seconds` (or, with `seconds` 0,
 * `transactions` times each); returns transactions per second. Uses pgbench when present (a C client:
 * the clients' own CPU stays small), else postgres.js.
 */
export async function writeRate(
  url: string,
  statement: string,
  { clients, seconds, transactions }: { clients: number; seconds: number; transactions: number },
  pgbench: string | undefined,
): Promise<number> {
  if (pgbench) {
    const dir = await mkdtemp(join(tmpdir(), 'bench-w4-'));
    try {
      const script = join(dir, 'insert.sql');
      await writeFile(script, `${statement};\n`);
      const { stdout } = await run(pgbench, [
        '-n',
        '-M',
        'prepared',
        '-c',
        String(clients),
        '-j',
        '2',
        ...(seconds > 0 ? ['-T', String(seconds)] : ['-t', String(transactions)]),
        '-f',
        script,
        url,
      ]);
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
      if (!tps) throw new Error(`Cannot read pgbench output:\n${stdout}`);
      return Number(tps[1]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const sql = postgres(url, { max: clients, onnotice: () => {} });
  try {
    await Promise.all(Array.from({ length: clients }, () => sql`SELECT 1`));
    let count = 0;
    const end = performance.now() + seconds * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let i = 0; seconds > 0 ? performance.now() < end : i < transactions; i++) {
          await sql.unsafe(statement, [], { prepare: true });
          count++;
        }
      }),
    );
    return count / ((performance.now() - t0) / 1000);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
