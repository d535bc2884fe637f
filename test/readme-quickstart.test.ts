/**
 * The README's quick start, verbatim, in a new app: packs this library, runs the README's
 * `npm install` lines against today's registry (only the package name points at the tarball; no
 * versions pinned), writes the README's code blocks as files, type-checks them with `tsc --strict`
 * under `module: NodeNext`, then runs generate → drizzle-kit migrate → listen → insert → handled
 * against the test database.
 *
 * It needs the npm registry (about 20 s with a warm npm cache); PGPUBSUB_QUICKSTART=0 skips it
 * offline. The README marks what it reads with `<!-- quickstart:… -->` comments.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { withDatabase } from '../tools/embedded-pg.ts';
import { waitFor } from './support/wait-for.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The fenced block that follows `<!-- quickstart:<marker> -->`. */
function markedBlock(markdown: string, marker: string): string {
  const at = markdown.indexOf(`<!-- quickstart:${marker} -->`);
  if (at < 0) throw new Error(`README has no <!-- quickstart:${marker} --> block`);
  const match = /```[a-z]*\n([\s\S]*?)```/.exec(markdown.slice(at));
  if (!match?.[1]) throw new Error(`no code block after <!-- quickstart:${marker} -->`);
  return match[1];
}

/** Every `<!-- quickstart:file PATH -->` block as [path, contents]. */
function markedFiles(markdown: string): [string, string][] {
  const paths = [...markdown.matchAll(/<!-- quickstart:file (\S+) -->/g)].map((m) => m[1] as string);
  return paths.map((path) => [path, markedBlock(markdown, `file ${path}`)]);
}

/** Shell lines of a block, without comments and blank lines. */
function commands(block: string): string[] {
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line && !line.startsWith('#'));
}

describe('README quick start blocks', () => {
  it('marks the install, migrate and listen commands and every file it shows', () => {
    expect(commands(markedBlock(README, 'install'))).toEqual([
      'npm install drizzle-pgpubsub drizzle-orm postgres valibot',
      'npm install -D drizzle-kit',
    ]);
    expect(commands(markedBlock(README, 'migrate'))).toHaveLength(3);
    expect(commands(markedBlock(README, 'listen'))[0]).toMatch(/npx drizzle-pgpubsub listen /);
    expect(markedFiles(README).map(([path]) => path)).toEqual([
      'src/db/schema.ts',
      'drizzle.config.ts',
      'src/db/index.ts',
      'src/listeners.ts',
      'src/signup.ts',
    ]);
  });
});

function run(cmd: string, cwd: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync('sh', ['-c', cmd], { cwd, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe.skipIf(process.env.PGPUBSUB_QUICKSTART === '0')('README quick start in a new app', () => {
  const app = mkdtempSync(join(tmpdir(), 'pgpubsub-quickstart-'));
  const dbName = `quickstart_${randomBytes(4).toString('hex')}`;
  let listen: ChildProcess | undefined;
  afterAll(async () => {
    if (listen && listen.exitCode === null) listen.kill('SIGKILL');
    const admin = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => {} });
    await admin.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
    rmSync(app, { recursive: true, force: true });
  });

  it('installs, type-checks, migrates and handles a sign-up', { timeout: 300_000 }, async () => {
    // A new ES module app; the library as the registry would serve it (dist/ is built by `npm test`).
    expect(existsSync(join(ROOT, 'dist/index.js')), 'run `npm run build` first').toBe(true);
    const packed = run(`npm pack --ignore-scripts --silent --pack-destination "${app}"`, ROOT);
    expect(packed.code, packed.out).toBe(0);
    const tarball = join(app, packed.out.trim().split('\n').at(-1) as string);
    writeFileSync(
      join(app, 'package.json'),
      `${JSON.stringify({ name: 'quickstart-app', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`,
    );

    // 1. The README's install lines, with only the package name pointed at the tarball.
    for (const line of commands(markedBlock(README, 'install'))) {
      const r = run(line.replace(/(^| )drizzle-pgpubsub( |$)/, `$1${tarball}$2`), app);
      expect(r.code, `${line}\n${r.out}`).toBe(0);
      if (process.env.PGPUBSUB_QUICKSTART_LOG) console.log(`$ ${line}\n${r.out}`);
      expect(r.out, line).not.toMatch(/ERESOLVE|peer dep|Could not resolve dependency|overriding peer/i);
      // no install script of ours for the user to approve (npm 11 lists them)
      expect(r.out, line).not.toMatch(/drizzle-pgpubsub@\S+ \(/);
    }

    // 2. The README's files, type-checked as pasted: tsc --strict, module NodeNext.
    for (const [path, text] of markedFiles(README)) {
      mkdirSync(join(app, dirname(path)), { recursive: true });
      writeFileSync(join(app, path), text);
    }
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: true,
          outDir: 'build',
          // the app's own @types/node; borrowed from this checkout to keep the install to the README's
          typeRoots: [join(ROOT, 'node_modules/@types')],
          types: ['node'],
        },
        include: ['src', 'drizzle.config.ts'],
      }),
    );
    const tsc = run(`node "${join(ROOT, 'node_modules/typescript/bin/tsc')}" -p .`, app);
    expect(tsc.code, tsc.out).toBe(0);

    // 3. generate → migrate, exactly the README's lines, in a database of its own.
    const admin = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE "${dbName}"`);
    await admin.end();
    const url = withDatabase(inject('pgAdminUrl'), dbName);
    for (const line of commands(markedBlock(README, 'migrate'))) {
      const r = run(line, app, { DATABASE_URL: url });
      expect(r.code, `${line}\n${r.out}`).toBe(0);
    }

    // 4. listen (one worker: the suite shares this server's connections), sign up, handled.
    const listenLine = (commands(markedBlock(README, 'listen'))[0] as string)
      .replace(/^DATABASE_URL=\S+ /, '')
      .replace(/--processes \d+/, '--processes 1')
      // the local bin itself, so SIGTERM reaches the CLI and its exit code is the one we see (not npx's)
      .replace(/^npx drizzle-pgpubsub /, './node_modules/.bin/drizzle-pgpubsub ');
    let output = '';
    listen = spawn('sh', ['-c', `exec ${listenLine}`], {
      cwd: app,
      env: { ...process.env, DATABASE_URL: url },
    });
    listen.stdout?.on('data', (d) => {
      output += d;
    });
    listen.stderr?.on('data', (d) => {
      output += d;
    });
    const exited = new Promise<number | null>((resolve) => listen?.on('exit', (code) => resolve(code)));
    await waitFor(() => output.includes('listening on'), {
      timeoutMs: 60_000,
      what: `listen to start:\n${output}`,
    });

    const signUp = run(
      `node --input-type=module -e "const { signUp } = await import('./build/src/signup.js'); const { sql } = await import('./build/src/db/index.js'); await signUp('Ada', 'ada@example.com', 'u1'); await sql.end();"`,
      app,
      { DATABASE_URL: url },
    );
    expect(signUp.code, signUp.out).toBe(0);

    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await waitFor(
        async () => (await sql`SELECT content FROM posts`).some((r) => r.content === 'Welcome, Ada!'),
        { timeoutMs: 30_000, what: `the post written by the authorEvents handler:\n${output}` },
      );
      await waitFor(() => output.includes('mail to ada@example.com: Welcome'), {
        timeoutMs: 30_000,
        what: `the emailRequested handler:\n${output}`,
      });
      const [pending] = await sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`;
      expect(pending?.n).toBe(0);
    } finally {
      await sql.end();
    }
    listen.kill('SIGTERM');
    expect(await exited, output).toBe(0);
  });
});
