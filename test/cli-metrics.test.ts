import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, killLeftovers, removeCli, startCli } from './fixtures/cli-run.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const LISTENER = 'test/fixtures/cli-listener.ts';
const t = useTestDatabase([
  'CREATE TABLE cli_effects (id serial PRIMARY KEY, key text NOT NULL UNIQUE, pid integer NOT NULL, worker text)',
]);
const env = () => ({ DATABASE_URL: t.url });

beforeAll(buildCli);
afterAll(removeCli);
afterEach(async () => {
  await killLeftovers();
  await t.sql`TRUNCATE cli_effects, pgpubsub.notifications RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
});

/** One sample's value from Prometheus text, e.g. `pgpubsub_messages_processed_total{channel="cli_jobs"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** 6 jobs that succeed and 1 that always fails (the fixture: maxAttempts 2, backoff 100 ms). */
async function workload(): Promise<void> {
  const jobs = [...Array.from({ length: 6 }, (_, i) => ({ key: `ok${i}` })), { key: 'bad', fail: true }];
  await t.sql`SELECT pgpubsub.notify('cli_jobs', j) FROM jsonb_array_elements(${JSON.stringify(jobs)}::jsonb) j`;
}

async function scrapeUntilDone(url: string): Promise<string> {
  let text = '';
  await waitFor(
    async () => {
      text = await (await fetch(url)).text();
      return (
        sample(text, 'pgpubsub_messages_processed_total{channel="cli_jobs"}') === 6 &&
        sample(text, 'pgpubsub_messages_dead_lettered_total{channel="cli_jobs"}') === 1
      );
    },
    { timeoutMs: 20_000, what: 'the workload in the metrics' },
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last scrape:\n${text}`);
  });
  return text;
}

function expectWorkload(text: string): void {
  const c = (name: string) => sample(text, `${name}{channel="cli_jobs"}`);
  expect(c('pgpubsub_messages_processed_total')).toBe(6);
  expect(c('pgpubsub_messages_failed_total')).toBe(2);
  expect(c('pgpubsub_messages_retried_total')).toBe(1);
  expect(c('pgpubsub_messages_dead_lettered_total')).toBe(1);
  expect(c('pgpubsub_handler_duration_seconds_count')).toBe(8);
  expect(c('pgpubsub_message_lag_seconds_count')).toBe(8);
  expect(c('pgpubsub_claim_duration_seconds_count')).toBeGreaterThanOrEqual(2);
  expect(c('pgpubsub_backlog')).toBe(0);
  expect(text).toMatch(/# TYPE pgpubsub_handler_duration_seconds histogram/);
}

describe('listen --metrics-port', () => {
  it('serves Prometheus text with exact counts of a known workload', async () => {
    const run = startCli(['listen', LISTENER, '--metrics-port', '0'], env());
    const line = await run.line(/metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/);
    await run.line(/listening on/);
    const url = /(http:\/\/\S+\/metrics)/.exec(line)![1]!;
    await workload();
    expectWorkload(await scrapeUntilDone(url));
    expect((await fetch(url.replace('/metrics', '/other'))).status).toBe(404);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });

  it('with --processes, the supervisor serves the sum over its workers', async () => {
    const run = startCli(['listen', LISTENER, '--processes', '2', '--metrics-port', '0'], env());
    const line = await run.line(/metrics at http:\/\/127\.0\.0\.1:\d+\/metrics \(the sum over the workers\)/);
    await run.line(/\[worker 1 pid \d+\] listening on/);
    await run.line(/\[worker 2 pid \d+\] listening on/);
    const url = /(http:\/\/\S+\/metrics)/.exec(line)![1]!;
    await workload();
    expectWorkload(await scrapeUntilDone(url));
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});
