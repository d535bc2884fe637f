import { DataPointType, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { notify } from '../src/notify.ts';
import { createListener } from '../src/runtime/listener.ts';
import { jobs } from './fixtures/effect-channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase();

/** A pull reader: `collect()` on demand, nothing exported. */
class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** name → (channel → value): sums' values, histograms' counts, gauges' values. */
async function read(reader: MetricReader): Promise<Record<string, Record<string, number>>> {
  const { resourceMetrics } = await reader.collect();
  const out: Record<string, Record<string, number>> = {};
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      const values: Record<string, number> = {};
      for (const point of metric.dataPoints) {
        const channel = String(point.attributes['messaging.destination.name']);
        values[channel] =
          metric.dataPointType === DataPointType.HISTOGRAM
            ? (point.value as { count: number }).count
            : (point.value as number);
      }
      out[metric.descriptor.name] = values;
    }
  }
  return out;
}

describe('OpenTelemetry metrics', () => {
  it('count a known workload exactly: processed, failed, retried, dead-lettered, durations, lag', async () => {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const db = t.drizzle(4);
    // n 1-5 succeed, 6 and 7 fail their first attempt, 8 always fails (2 attempts, then dead).
    await db.transaction((tx) =>
      notify(
        tx,
        jobs,
        [1, 2, 3, 4, 5, 6, 7, 8].map((n) => ({ n })),
      ),
    );
    const listener = createListener(db, {
      maxAttempts: 2,
      backoff: () => 0,
      tracing: false,
      metrics: { meterProvider },
    }).on(jobs, ({ payload, attempt }) => {
      if (payload.n === 8 || (payload.n >= 6 && attempt === 1)) throw new Error('no');
    });
    // drain() takes the retries too once due (backoff 0); drain until nothing is left.
    const total = { processed: 0, retried: 0, dead: 0 };
    await waitFor(
      async () => {
        const s = await listener.drain();
        total.processed += s.processed;
        total.retried += s.retried;
        total.dead += s.dead;
        return (await t.sql`SELECT 1 FROM pgpubsub.notifications WHERE status = 'pending'`).length === 0;
      },
      { timeoutMs: 10_000, what: 'the workload to finish' },
    );
    expect(total).toEqual({ processed: 7, retried: 3, dead: 1 });
    const m = await read(reader);
    expect(m['pgpubsub.messages.processed']).toEqual({ jobs: 7 });
    expect(m['pgpubsub.messages.failed']).toEqual({ jobs: 4 });
    expect(m['pgpubsub.messages.retried']).toEqual({ jobs: 3 });
    expect(m['pgpubsub.messages.dead_lettered']).toEqual({ jobs: 1 });
    expect(m['pgpubsub.handler.duration']).toEqual({ jobs: 11 });
    expect(m['pgpubsub.message.lag']).toEqual({ jobs: 11 });
    expect(m['pgpubsub.claim.duration']!.jobs).toBeGreaterThanOrEqual(2);
    await meterProvider.shutdown();
  });

  it('backlog gauges: one query per collection for the process, per channel', async () => {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const db = t.drizzle(4);
    await t.sql`DELETE FROM pgpubsub.notifications`;
    await db.transaction((tx) => notify(tx, jobs, [{ n: 1 }, { n: 2 }, { n: 3 }], { delayMs: 3_600_000 }));
    const listener = createListener(db, { tracing: false, metrics: { meterProvider } }).on(jobs, () => {});
    await listener.start();
    try {
      const m = await read(reader);
      expect(m['pgpubsub.backlog']).toEqual({ jobs: 3 });
      expect(m['pgpubsub.oldest_pending_age']).toEqual({ jobs: 0 });
      // A due one that waits: its age counts from its run_at.
      await t.sql`UPDATE pgpubsub.notifications SET run_at = now() - interval '60 seconds' WHERE id = (SELECT min(id) FROM pgpubsub.notifications)`;
      const later = await read(reader);
      expect(later['pgpubsub.oldest_pending_age']!.jobs).toBeGreaterThanOrEqual(59);
    } finally {
      await listener.stop({ timeoutMs: 1000 });
    }
    await meterProvider.shutdown();
  });
});
