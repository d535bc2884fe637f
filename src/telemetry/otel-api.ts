import { createRequire } from 'node:module';

/**
 * The part of `@opentelemetry/api` the library uses (a structural type: the package is an optional
 * peer dependency, never imported statically, so its types are not needed to build or use this one).
 */
export interface OtelApi {
  trace: {
    getTracer(name: string, version?: string): OtelTracer;
    getTracerProvider(): { getTracer(name: string, version?: string): unknown };
    getSpanContext(context: unknown): OtelSpanContext | undefined;
    setSpanContext(context: unknown, spanContext: OtelSpanContext): unknown;
    setSpan(context: unknown, span: OtelSpan): unknown;
  };
  context: { active(): unknown; with<T>(context: unknown, fn: () => T): T };
  metrics: { getMeter(name: string, version?: string): OtelMeter };
  isSpanContextValid(spanContext: OtelSpanContext): boolean;
  createTraceState?(raw?: string): unknown;
  /** The global provider's class: `new ProxyTracerProvider().getDelegate()` is the no-op provider. */
  ProxyTracerProvider?: new () => { getDelegate(): unknown };
  ROOT_CONTEXT: unknown;
}

/** A span context (W3C trace context fields). */
export interface OtelSpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  isRemote?: boolean;
  traceState?: { serialize(): string } | undefined;
}

/** A span, as far as the library writes to it. */
export interface OtelSpan {
  setAttribute(key: string, value: string | number | boolean): unknown;
  addEvent(name: string, attributes?: Record<string, string | number | boolean>): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  recordException(exception: unknown): unknown;
  isRecording(): boolean;
  spanContext(): OtelSpanContext;
  end(): void;
}

/** A tracer. */
export interface OtelTracer {
  startSpan(
    name: string,
    options?: {
      kind?: number;
      attributes?: Record<string, string | number | boolean>;
      links?: { context: OtelSpanContext }[];
    },
    context?: unknown,
  ): OtelSpan;
}

/** Attributes of a measurement. */
export type Attributes = Record<string, string | number | boolean>;

/** A counter or an up-down counter. */
export interface OtelCounter {
  add(value: number, attributes?: Attributes): void;
}

/** A histogram. */
export interface OtelHistogram {
  record(value: number, attributes?: Attributes): void;
}

/** What an observable instrument's batch callback reports to. */
export interface OtelBatchResult {
  observe(instrument: unknown, value: number, attributes?: Attributes): void;
}

/** The part of an OpenTelemetry `Meter` the library uses (a prom-client adapter implements it too). */
export interface OtelMeter {
  createCounter(name: string, options?: { description?: string; unit?: string }): OtelCounter;
  createHistogram(
    name: string,
    options?: { description?: string; unit?: string; advice?: { explicitBucketBoundaries?: number[] } },
  ): OtelHistogram;
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): unknown;
  addBatchObservableCallback(
    callback: (result: OtelBatchResult) => void | Promise<void>,
    observables: unknown[],
  ): void;
}

/** OpenTelemetry's SpanKind.CONSUMER and SpanStatusCode.ERROR (stable values of the API). */
export const SPAN_KIND_CONSUMER = 4;
export const SPAN_STATUS_ERROR = 2;

let loaded: OtelApi | null | undefined;

/**
 * `@opentelemetry/api` if the application has it installed, else `null`. Loaded once, on first use
 * (listener start, first `notify()`), never at import: the package costs nothing when absent. The
 * API keeps its global state (providers, context manager) on `globalThis`, so this copy sees what
 * the application registered through its own import of the package.
 */
export function otelApi(): OtelApi | null {
  if (loaded !== undefined) return loaded;
  try {
    loaded = createRequire(import.meta.url)('@opentelemetry/api') as OtelApi;
  } catch {
    loaded = null;
  }
  return loaded;
}

/** For tests: forget the loaded API (the next call loads it again, or sets `api`). */
export function setOtelApiForTesting(api: OtelApi | null | undefined): void {
  loaded = api;
}
