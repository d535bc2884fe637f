import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitCodeFor } from '../src/cli/exit-codes.ts';
import { PgPubSubError, type PgPubSubErrorCode } from '../src/errors.ts';
import {
  CONFIG,
  cli,
  expectError,
  fakeKit,
  makeApp,
  readTree,
  run,
  useScratchApps,
} from './fixtures/generate-app.ts';

useScratchApps({ cli: true });

describe('generate: warnings', () => {
  it('warns on every run when schemaFilter would let drizzle-kit push drop the storage', async () => {
    const dir = makeApp({
      'drizzle.config.ts': `export default { dialect: 'postgresql', schema: './schema.ts', schemaFilter: ['public', 'pgpubsub'] };\n`,
      'schema.ts': `import * as v from 'valibot';\nimport { channel } from 'drizzle-pgpubsub';\nexport const ping = channel('ping', v.object({}));\n`,
    });
    const expected = expect.stringMatching(/^warning: schemaFilter in drizzle.config.ts includes "pgpubsub"/);
    expect((await run(dir)).warned).toEqual([expected]);
    const again = await run(dir);
    expect(again.out).toEqual(['No changes: 1 channel up to date.']);
    expect(again.warned).toEqual([expected]);
  });
});

describe('generate: bad input', () => {
  const schemaApp = (schema: string, extra: Record<string, string> = {}) =>
    makeApp({
      'drizzle.config.ts': CONFIG,
      'src/db/schema.ts': `import { pgTable, serial, text } from 'drizzle-orm/pg-core';
import * as v from 'valibot';
import { channel, triggerChannel } from 'drizzle-pgpubsub';
${schema}
`,
      ...extra,
    });
  const long = 'x'.repeat(70);
  const cases: {
    name: string;
    code: PgPubSubErrorCode;
    texts: string[];
    options?: { config?: string; schema?: string };
    app: () => string;
  }[] = [
    {
      name: 'no config',
      code: 'CONFIG_NOT_FOUND',
      texts: ['No drizzle config found in', 'drizzle.config.ts', '--config'],
      app: () => makeApp({ 'README.md': 'empty' }),
    },
    {
      name: 'missing --config file',
      code: 'CONFIG_NOT_FOUND',
      texts: ['nope.config.ts does not exist'],
      options: { config: 'nope.config.ts' },
      app: () => makeApp({ 'drizzle.config.ts': CONFIG }),
    },
    {
      name: 'not postgresql',
      code: 'CONFIG_INVALID',
      texts: ["needs `dialect: 'postgresql'`", '"mysql"'],
      app: () => makeApp({ 'drizzle.config.js': "export default { dialect: 'mysql', schema: './s.ts' };\n" }),
    },
    {
      name: 'config that throws',
      code: 'CONFIG_INVALID',
      texts: ['Could not load drizzle.config.ts', 'config exploded'],
      app: () => makeApp({ 'drizzle.config.ts': "throw new Error('config exploded');\n" }),
    },
    {
      name: 'no schema files',
      code: 'CONFIG_INVALID',
      texts: ['no schema files match "./src/db/*.ts"'],
      app: () => makeApp({ 'drizzle.config.ts': CONFIG }),
    },
    {
      name: 'schema import failure',
      code: 'SCHEMA_IMPORT_FAILED',
      texts: ["Could not import schema file src/db/schema.ts (Cannot find module './does-not-exist.ts')"],
      app: () => schemaApp("import './does-not-exist.ts';"),
    },
    {
      name: 'table without a primary key',
      code: 'NO_PRIMARY_KEY',
      texts: ['"keyless"', 'has no primary key', 'export `keylessEvents` of src/db/schema.ts'],
      app: () =>
        schemaApp(
          "export const keyless = pgTable('keyless', { name: text() });\nexport const keylessEvents = triggerChannel(keyless, { on: ['insert'] });",
        ),
    },
    {
      name: 'duplicate channel names',
      code: 'DUPLICATE_CHANNEL',
      texts: [
        'Two different channels are named "jobs"',
        'export `jobs` of src/db/other.ts',
        'export `jobEvents` of src/db/schema.ts',
      ],
      app: () =>
        schemaApp(
          "export const jobsTable = pgTable('jobs', { id: serial().primaryKey() });\nexport const jobEvents = triggerChannel(jobsTable, { on: ['insert'] });",
          {
            'src/db/other.ts':
              "import * as v from 'valibot';\nimport { channel } from 'drizzle-pgpubsub';\nexport const jobs = channel('jobs', v.object({}));\n",
          },
        ),
    },
    {
      name: 'invalid channel name',
      code: 'INVALID_CHANNEL_NAME',
      texts: ['src/db/schema.ts', `Channel name "${long}" is 70 bytes long`],
      app: () => schemaApp(`export const tooLong = channel('${long}', v.object({}));`),
    },
    {
      name: 're-exported notifications table',
      code: 'CONFIG_INVALID',
      texts: ['export `notifications` of src/db/schema.ts', 'Remove that export'],
      app: () => schemaApp("export { notifications } from 'drizzle-pgpubsub';"),
    },
    {
      name: 'bad --schema',
      code: 'INVALID_OPTIONS',
      texts: ['--schema must be a pg schema name'],
      options: { schema: 's'.repeat(64) },
      app: () => makeApp({ 'drizzle.config.ts': CONFIG }),
    },
    {
      name: 'corrupt journal',
      code: 'MIGRATIONS_INVALID',
      texts: ['_journal.json is not valid JSON'],
      // A 0.x project: with drizzle-kit 1.0 any journal is refused before it is parsed.
      app: () => schemaApp('', { 'drizzle/meta/_journal.json': '{ nope', ...fakeKit('0.31.11') }),
    },
  ];

  it('fails with one clear error, the exit code of its error code and nothing written', async () => {
    const apps = cases.map((c) => ({ ...c, dir: c.app() }));
    const before = apps.map(({ dir }) => readTree(dir));
    const spawned = await Promise.all(
      apps.map(({ dir, options = {} }) =>
        cli(dir, 'generate', ...Object.entries(options).flatMap(([key, value]) => [`--${key}`, value])),
      ),
    );
    for (const [i, c] of apps.entries()) {
      const { code, stdout, stderr } = spawned[i]!;
      const expected = exitCodeFor(new PgPubSubError(c.code, ''));
      expect({ case: c.name, code, stdout }).toEqual({ case: c.name, code: expected, stdout: '' });
      expect(stderr, c.name).toMatch(/^error: /);
      expect(stderr.trimEnd().split('\n'), c.name).toHaveLength(1);
      for (const text of c.texts) expect(stderr, c.name).toContain(text);
      await expectError(run(c.dir, c.options), c.code, ...c.texts);
      expect(readTree(c.dir), c.name).toEqual(before[i]);
    }
  });

  it('refuses a `when` that would be split at a statement breakpoint', async () => {
    const dir = schemaApp(
      "export const t1 = pgTable('t1', { id: serial().primaryKey() });\nexport const t1Events = triggerChannel(t1, { on: ['insert'], when: `'--> statement-breakpoint' <> ''` });",
    );
    await expectError(
      run(dir),
      'INVALID_CHANNEL',
      'export `t1Events` of src/db/schema.ts',
      'statement-breakpoint',
    );
    expect(existsSync(join(dir, 'drizzle'))).toBe(false);
  });

  it('prints usage for --help, no command and unknown commands or options', async () => {
    const dir = makeApp({});
    const [help, none, unknown, genHelp, badOption] = await Promise.all([
      cli(dir, '--help'),
      cli(dir),
      cli(dir, 'frobnicate'),
      cli(dir, 'generate', '--help'),
      cli(dir, 'generate', '--bogus'),
    ]);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('Usage: drizzle-pgpubsub <command>');
    expect(help.stdout).toMatch(/generate +write trigger migrations/);
    expect(none).toMatchObject({ code: 2, stdout: '' });
    expect(none.stderr).toContain('Usage: drizzle-pgpubsub <command>');
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toMatch(/^error: unknown command "frobnicate"\n\nUsage:/);
    expect(genHelp).toMatchObject({ code: 0, stderr: '' });
    expect(genHelp.stdout).toContain('Usage: drizzle-pgpubsub generate [--config <file>] [--schema <name>]');
    expect(badOption).toMatchObject({ code: 2, stdout: '' });
    expect(badOption.stderr).toMatch(/^error: Unknown option '--bogus'/);
  });

  it('prints the stack of an unexpected error and exits 1', async () => {
    // A hand-made object that passes isChannel() but has no Drizzle table: a bug, not bad input.
    const dir = makeApp({
      'drizzle.config.ts': CONFIG,
      'src/db/schema.ts': `export const fake = {
  [Symbol.for('drizzle-pgpubsub.channel')]: 'trigger', kind: 'trigger', name: 'fake', table: {}, ops: ['insert'], columns: [],
};
`,
    });
    const result = await cli(dir, 'generate');
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toMatch(/^TypeError: /);
    expect(result.stderr).toMatch(/\n {4}at /);
    expect(existsSync(join(dir, 'drizzle'))).toBe(false);
  });
});
