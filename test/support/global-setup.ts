import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { storageMigrationSql } from '../../src/storage/notifications.ts';
import { startPg, withDatabase } from '../../tools/embedded-pg.ts';
import { transpileSources } from './transpile.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
    /** The CLI of src/ transpiled once for the run (test/fixtures/cli-run.ts). */
    cliScript: string;
  }
}

/**
 * Starts one PostgreSQL for the run (TEST_DATABASE_URL or embedded) and a migrated template database,
 * and transpiles src/ once for the tests that spawn the CLI.
 */
export default async function setup(project: TestProject) {
  const server = await startPg(process.env.TEST_DATABASE_URL, { max_prepared_transactions: '10' });
  const template = `pgpubsub_tpl_${process.pid}`;
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS "${template}"`);
  await admin.unsafe(`CREATE DATABASE "${template}"`);
  const tpl = postgres(withDatabase(server.url, template), { max: 1, onnotice: () => {} });
  for (const statement of storageMigrationSql()) await tpl.unsafe(statement);
  await tpl.end();
  const cliBuild = resolve(import.meta.dirname, '../../.tmp', `cli-run-${process.pid}`);
  project.provide('cliScript', transpileSources(cliBuild));
  project.provide('pgAdminUrl', server.url);
  project.provide('pgTemplate', template);
  return async () => {
    await admin.unsafe(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`);
    await admin.end();
    await server.stop();
    rmSync(cliBuild, { recursive: true, force: true });
  };
}
