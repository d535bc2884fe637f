/** How a benchmark worker sets up OpenTelemetry (W1OTEL, bench/otel-cost.ts; issue #19). */
export const OTEL_MODES = ['plain', 'api', 'sdk', 'memory'] as const;

/**
 * `plain`: the listener with `tracing: false, metrics: false`; `api`: `@opentelemetry/api` installed,
 * no SDK (the default for a user without one); `sdk`: an SDK tracer provider, AsyncLocalStorage
 * context manager and meter provider registered globally, with no span processor, exporter or
 * metric reader; `memory`: the same with an in-memory span exporter and a metric reader.
 */
export type OtelMode = (typeof OTEL_MODES)[number];

/** Registers OpenTelemetry globally as `mode` says; call before the listener is created. */
export async function registerOtel(mode: OtelMode): Promise<void> {
  // Loaded in every setup (the listener loads it at start() otherwise): only per-job costs compare.
  const { context, metrics, trace } = await import('@opentelemetry/api');
  if (mode === 'plain' || mode === 'api') return;
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import(
    '@opentelemetry/sdk-trace-base'
  );
  const { MeterProvider, MetricReader } = await import('@opentelemetry/sdk-metrics');
  class Reader extends MetricReader {
    protected async onForceFlush(): Promise<void> {}
    protected async onShutdown(): Promise<void> {}
  }
  const memory = mode === 'memory';
  const exporter = new InMemorySpanExporter();
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider(memory ? { spanProcessors: [new SimpleSpanProcessor(exporter)] } : {}),
  );
  const reader = new Reader();
  metrics.setGlobalMeterProvider(new MeterProvider(memory ? { readers: [reader] } : {}));
  // What an exporter would do, without the I/O: take the spans and the metrics off the SDK.
  if (memory) {
    setInterval(() => {
      exporter.reset();
      reader.collect().catch(() => {});
    }, 1000).unref();
  }
}
