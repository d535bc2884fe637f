/**
 * W5 memory through the CLI (issue #18): peak RSS of `drizzle-pgpubsub listen` draining N no-op
 * notifications with the CLI's defaults (memory cap on) and with `--no-memory-cap`, on the Node
 * binaries given. Not part of `npm run bench`; run it by hand:
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
 *     node --import jiti/register bench/cli-memory.ts --n 1000000 --node node,/path/to/node24
 *
 * It builds nothing: run `npm run build` first (the CLI and the listener module use dist/).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import postgres from 'postgres';
import { analyze } from './lib/pg.ts';
import { bulkInsertSql, ours } from './systems/ours.ts';

const ROOT = resolve(import.meta.dirname, '..');
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const N = Number(arg('n', '1000000'));
const NODES = arg('node', process.execPath).split(',');
const MODES = arg('modes', 'default;--no-memory-cap').split(';');
const REPS = Number(arg('reps', '1'));
const adminUrl = process.env.DATABASE_URL!;

const dir = join(ROOT, '.tmp', 'cli-memory');
mkdirSync(dir, { recursive: true });
const modulePath = join(dir, 'listeners.mjs');
writeFileSync(
  modulePath,
  `import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import { channel, createListener } from '../../dist/index.js';
const sql = postgres(process.env.DATABASE_URL, { onnotice: () => {} });
export const listener = createListener(drizzle({ client: sql })).on(channel('noop', v.object({ i: v.number() })), () => {});
`,
);

function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

async function once(node: string, mode: string) {
  const name = `perf_climem_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name}`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  await ours.install(url.toString());
  const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
  await sql.unsafe(bulkInsertSql(1, N));
  await analyze(url.toString());
  // A mode is `default`, CLI options (`--no-memory-cap`), or `node:<flags>` (Node flags, no CLI option).
  const nodeFlags = mode.startsWith('node:') ? mode.slice(5).split(' ') : [];
  const args = [...nodeFlags, join(ROOT, 'dist/cli/main.js'), 'listen', modulePath, '--log-level', 'warn'];
  if (mode !== 'default' && nodeFlags.length === 0) args.push(...mode.split(' '));
  const t0 = performance.now();
  const child: ChildProcess = spawn(node, args, {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: url.toString(),
      ...(process.env.LISTEN_MALLOC_ARENA_MAX
        ? { MALLOC_ARENA_MAX: process.env.LISTEN_MALLOC_ARENA_MAX }
        : {}),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const peak = new Map<number, number>();
  const sampler = setInterval(() => {
    for (const pid of [child.pid!, ...childrenOf(child.pid!)]) {
      const r = rssMb(pid);
      if (r !== undefined) peak.set(pid, Math.max(peak.get(pid) ?? 0, r));
    }
  }, 20);
  let drainedAt = 0;
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`the listener exited before draining (${node} ${mode})`);
    await new Promise((r) => setTimeout(r, 200));
    const [row] = await sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`;
    if (row!.n === 0) {
      drainedAt = performance.now();
      break;
    }
  }
  clearInterval(sampler);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await sql.end();
  await admin.unsafe(`DROP DATABASE ${name} WITH (FORCE)`);
  await admin.end();
  const [launcher, ...rest] = [...peak.entries()];
  const result = {
    node: node === process.execPath ? process.version : node,
    mode,
    peakRssMb: Math.round(Math.max(...peak.values()) * 10) / 10,
    processes: peak.size,
    perProcessMb: [launcher, ...rest].map((e) => e && Math.round(e[1] * 10) / 10),
    drainS: Math.round((drainedAt - t0) / 100) / 10,
    jobsPerS: Math.round(N / ((drainedAt - t0) / 1000)),
    loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
  console.log(JSON.stringify(result));
}

for (let rep = 0; rep < REPS; rep++) {
  for (const node of NODES) for (const mode of MODES) await once(node, mode);
}
