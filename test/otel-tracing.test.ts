import { fork } from 'node:child_process';
import { join } from 'node:path';
import { trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { createListener } from '../src/runtime/listener.ts';
import { itemEvents, jobs } from './fixtures/effect-channels.ts';
import { installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { registerInMemoryTracing } from './support/otel.ts';

const t = useTestDatabase(['CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)']);
const exporter = registerInMemoryTracing();

type ProducerSpan = { name: string; traceId: string; spanId: string };

/** Runs the producer fixture in a child process; resolves with its spans. */
function produce(): Promise<ProducerSpan[]> {
  const child = fork(join(import.meta.dirname, 'fixtures', 'otel-producer.ts'), {
    execArgv: ['--import', 'jiti/register'],
    env: { ...process.env, DATABASE_URL: t.url },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (spans) => resolve(spans as ProducerSpan[]));
    child.once('exit', (code) => reject(new Error(`producer exited with ${code} before reporting`)));
  });
}

describe('OpenTelemetry tracing', () => {
  it('a handler span continues the producer trace of another process, with messaging attributes', async () => {
    await installChannels(t.sql, [itemEvents]);
    const produced = await produce();
    const job = produced.find((s) => s.name === 'produce job')!;
    const item = produced.find((s) => s.name === 'produce item')!;
    const contexts: Record<string, unknown>[] = [];
    const inner = trace.getTracer('test');
    const listener = createListener(t.drizzle(4), { maxAttempts: 1 })
      .on(jobs, (e) => {
        contexts.push(e.context);
        inner.startSpan('inside handler').end();
        if (e.payload.n === 2) throw new Error('boom');
      })
      .on(itemEvents, () => {
        inner.startSpan('inside item handler').end();
      });
    const summary = await listener.drain();
    expect(summary).toMatchObject({ processed: 2, dead: 1 });
    const spans = exporter.getFinishedSpans();
    const byName = (name: string) => spans.filter((s) => s.name === name);
    const processJobs = byName('process jobs');
    expect(processJobs).toHaveLength(2);
    const traced = processJobs.find((s) => s.spanContext().traceId === job.traceId)!;
    expect(traced).toBeDefined();
    expect(traced.parentSpanContext?.spanId).toBe(job.spanId);
    expect(traced.links.map((l) => l.context.spanId)).toEqual([job.spanId]);
    expect(traced.kind).toBe(4); // CONSUMER
    expect(traced.attributes).toMatchObject({
      'messaging.system': 'drizzle-pgpubsub',
      'messaging.destination.name': 'jobs',
      'messaging.operation.type': 'process',
      'pgpubsub.attempt': 1,
    });
    expect(typeof traced.attributes['messaging.message.id']).toBe('string');
    expect(traced.attributes['pgpubsub.claim.wait_ms']).toBeGreaterThanOrEqual(0);
    expect(traced.status.code).toBe(0);
    // The handler's own spans are children of the handler span.
    const insideJob = byName('inside handler').find((s) => s.spanContext().traceId === job.traceId)!;
    expect(insideJob.parentSpanContext?.spanId).toBe(traced.spanContext().spanId);
    // Trigger channel, via withTraceContext(): same trace as the producer's span.
    const [processItem] = byName('process items') as ReadableSpan[];
    expect(processItem!.spanContext().traceId).toBe(item.traceId);
    expect(processItem!.parentSpanContext?.spanId).toBe(item.spanId);
    expect(processItem!.attributes['pgpubsub.op']).toBe('insert');
    // The untraced notification: a new trace, status error, a dead-letter event.
    const failed = processJobs.find((s) => s !== traced)!;
    expect([job.traceId, item.traceId]).not.toContain(failed.spanContext().traceId);
    expect(failed.links).toEqual([]);
    expect(failed.status).toMatchObject({ code: 2, message: 'boom' });
    expect(failed.events.map((e) => e.name)).toEqual(['exception', 'pgpubsub.dead_letter']);
    expect(contexts).toContainEqual({ traceparent: `00-${job.traceId}-${job.spanId}-01` });
    expect(contexts).toContainEqual({});
  });
});
