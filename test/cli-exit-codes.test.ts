import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from '../src/cli/main.ts';
import { buildCli, removeCli, runCli } from './fixtures/cli-run.ts';

// Every command goes through one runner (src/cli/command.ts): these are the codes docs/cli.md promises.
const env = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' };
const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

beforeAll(buildCli);
afterAll(removeCli);

describe('CLI exit codes', () => {
  it('every command: an unknown option exits 2 with the message and the command usage', async () => {
    const names = Object.keys(commands);
    expect(names).toEqual([
      'generate',
      'listen',
      'status',
      'failed',
      'retry',
      'backfill',
      'purge',
      'dashboard',
    ]);
    const runs = await Promise.all(names.map((name) => runCli([name, '--bogus'], env)));
    for (const [i, name] of names.entries()) {
      const { code, stdout, stderr } = runs[i]!;
      expect({ name, code, stdout }).toEqual({ name, code: 2, stdout: '' });
      expect(stderr, name).toMatch(/^error: Unknown option '--bogus'/);
      expect(stderr, name).toContain(`Usage: drizzle-pgpubsub ${name}`);
    }
  });

  it('every command: --help prints its usage and exits 0', async () => {
    const names = Object.keys(commands);
    const runs = await Promise.all(names.map((name) => runCli([name, '--help'], env)));
    for (const [i, name] of names.entries()) {
      expect({ name, code: runs[i]!.code, stderr: runs[i]!.stderr }).toEqual({ name, code: 0, stderr: '' });
      expect(runs[i]!.stdout, name).toContain(`Usage: drizzle-pgpubsub ${name}`);
    }
  });

  it('--version prints the version and exits 0; no command or an unknown one exits 2', async () => {
    const [v, short, none, unknown] = await Promise.all([
      runCli(['--version'], env),
      runCli(['-v'], env),
      runCli([], env),
      runCli(['frobnicate'], env),
    ]);
    expect(v).toMatchObject({ code: 0, stdout: version, stderr: '' });
    expect(short).toMatchObject({ code: 0, stdout: version });
    expect(none).toMatchObject({ code: 2, stdout: '' });
    expect(none.stderr).toMatch(/^error: no command given\.\n\nUsage: drizzle-pgpubsub <command>/);
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toMatch(/^error: unknown command "frobnicate"\n\nUsage:/);
  });

  it('--json makes a usage error one JSON line', async () => {
    const { code, stderr } = await runCli(['status', '--json', '--bogus'], env);
    expect(code).toBe(2);
    expect(JSON.parse(stderr)).toMatchObject({
      level: 50,
      time: expect.any(Number),
      code: 'INVALID_OPTIONS',
    });
  });
});
