import * as api from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { notify } from '../src/notify.ts';
import { createListener } from '../src/runtime/listener.ts';
import { discards, recordingTracer } from '../src/telemetry/inert.ts';
import type { OtelApi } from '../src/telemetry/otel-api.ts';
import { jobs } from './fixtures/effect-channels.ts';
import { useTestDatabase } from './support/db.ts';

const t = useTestDatabase();

const otel = api as unknown as OtelApi;

class Reader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

describe('telemetry nobody can see is detected without recording anything', () => {
  it('tracers: no SDK and an SDK without a span processor record nothing; with one they do', () => {
    // Nothing registered globally in this file: the global proxy delegates to the no-op provider.
    expect(recordingTracer(otel, undefined, 'x', '1')).toBeUndefined();
    expect(recordingTracer(otel, new BasicTracerProvider(), 'x', '1')).toBeUndefined();
    const live = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
    });
    expect(recordingTracer(otel, live, 'x', '1')).toBe(live.getTracer('x', '1'));
    // A provider of a shape it does not know counts as recording.
    const custom = { getTracer: () => ({ startSpan: () => ({}) }) };
    expect(recordingTracer(otel, custom, 'x', '1')).toBeDefined();
  });

  it('instruments: the no-op meter and a meter provider without a reader discard; with a reader they do not', () => {
    expect(discards(api.metrics.getMeter('x').createCounter('c'))).toBe(true);
    expect(discards(new MeterProvider().getMeter('x').createHistogram('h'))).toBe(true);
    const read = new MeterProvider({ readers: [new Reader()] }).getMeter('x');
    expect(discards(read.createCounter('c'))).toBe(false);
    expect(discards(read.createHistogram('h'))).toBe(false);
    expect(discards({ add() {} })).toBe(false);
  });

  it('a tracer provider that starts recording after the listener was created is used from the next claim', async () => {
    const exporter = new InMemorySpanExporter();
    const proxy = new api.ProxyTracerProvider();
    const db = t.drizzle(2);
    const listener = createListener(db, { metrics: false, tracing: { tracerProvider: proxy } }).on(
      jobs,
      () => {},
    );
    await db.transaction((tx) => notify(tx, jobs, { n: 1 }));
    expect(await listener.drain()).toMatchObject({ processed: 1 });
    proxy.setDelegate(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    await db.transaction((tx) => notify(tx, jobs, [{ n: 2 }, { n: 3 }]));
    expect(await listener.drain()).toMatchObject({ processed: 2 });
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['process jobs', 'process jobs']);
    expect(spans.map((s) => s.attributes['messaging.destination.name'])).toEqual(['jobs', 'jobs']);
  });
});
