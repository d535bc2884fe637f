import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIRS = ['src', 'bench', 'tools'];

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'results' && entry.name !== 'node_modules') out.push(...(await tsFiles(path)));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      out.push(path);
    }
  }
  return out;
}

let built: Promise<{ dir: string; worker: string }> | undefined;

/**
 * Transpiles src/, bench/ and tools/ to plain JavaScript (no type check) into a fresh temporary
 * folder (with `"type": "module"` and a link to this repository's node_modules) and returns the path
 * of the built worker. Worker processes run it with plain `node`: a TypeScript loader (jiti) in the
 * measured process would add its own memory (tens of MB) and CPU to every number taken there.
 */
export async function workerBuild(): Promise<string> {
  built ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drizzle-pgpubsub-bench-'));
    // Also gone when the run dies halfway (removeWorkerBuild() is the normal path).
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const options: ts.CompilerOptions = {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      verbatimModuleSyntax: true,
      rewriteRelativeImportExtensions: true,
    };
    for (const sub of DIRS) {
      for (const file of await tsFiles(join(ROOT, sub))) {
        const { outputText } = ts.transpileModule(await readFile(file, 'utf8'), {
          compilerOptions: options,
          fileName: file,
        });
        const target = join(dir, relative(ROOT, file)).replace(/\.ts$/, '.js');
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, outputText);
      }
    }
    await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    return { dir, worker: join(dir, 'bench', 'worker.js') };
  })();
  return (await built).worker;
}

/** Removes the temporary build, if one was made. */
export async function removeWorkerBuild(): Promise<void> {
  if (!built) return;
  const { dir } = await built.catch(() => ({ dir: undefined }));
  built = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
}
