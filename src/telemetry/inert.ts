import type { OtelApi, OtelTracer } from './otel-api.ts';

/**
 * Whether telemetry would reach anyone, decided without recording anything (docs/observability.md,
 * "What instrumentation costs"). A listener asks once per claim, so that with nobody listening
 * (no SDK, or an SDK that exports nothing) a handler call costs no span, context or measurement.
 */

/** A tracer provider as the API hands it out: the global one is a proxy with a delegate. */
interface ProviderLike {
  getTracer(name: string, version?: string): unknown;
  getDelegate?(): ProviderLike;
}

const noopProviders = new WeakMap<OtelApi, unknown>();

/** The API's own no-op tracer provider (what the global proxy delegates to before an SDK registers). */
function noopProvider(api: OtelApi): unknown {
  if (!noopProviders.has(api)) {
    const ProxyProvider = api.ProxyTracerProvider;
    noopProviders.set(api, ProxyProvider ? new ProxyProvider().getDelegate() : undefined);
  }
  return noopProviders.get(api);
}

/**
 * The tracer of `provider` (or of the global provider's current delegate) to record spans with, or
 * `undefined` when every span would be dropped unseen: the provider is the API's no-op one (no SDK
 * registered), or an SDK tracer with no span processor (`spanProcessors: []`). The latter is read
 * from the SDK's internals (sdk-trace 2.x; its own `forceFlush()` reads the same field); a shape
 * this does not recognise counts as recording.
 */
export function recordingTracer(
  api: OtelApi,
  provider: ProviderLike | undefined,
  name: string,
  version: string,
): OtelTracer | undefined {
  let p = provider ?? (api.trace.getTracerProvider() as ProviderLike);
  if (typeof p.getDelegate === 'function') p = p.getDelegate();
  if (isNoop(p, noopProvider(api), 'NoopTracerProvider')) return undefined;
  const tracer = p.getTracer(name, version) as OtelTracer;
  return isNoop(tracer, undefined, 'NoopTracer') || dropsEverySpan(tracer) ? undefined : tracer;
}

function isNoop(value: unknown, noop: unknown, className: string): boolean {
  if (value === noop && noop !== undefined) return true;
  // Another copy of the API (a second @opentelemetry/api in node_modules) has other singletons.
  return (value as { constructor?: { name?: string } } | undefined)?.constructor?.name === className;
}

/** An SDK tracer whose provider has no span processor: nothing ever sees its spans. */
function dropsEverySpan(tracer: OtelTracer): boolean {
  const processors = (tracer as { _spanProcessor?: { _spanProcessors?: unknown } })._spanProcessor
    ?._spanProcessors;
  return Array.isArray(processors) && processors.length === 0;
}

/**
 * Whether an instrument discards every measurement: the API's no-op instruments (no meter provider
 * registered when the listener started), or an SDK instrument with no storage (a meter provider
 * with no reader). Instruments are fixed once created, so this is asked once per instrument.
 */
export function discards(instrument: unknown): boolean {
  if (instrument === undefined || instrument === null) return true;
  const name = (instrument as { constructor?: { name?: string } }).constructor?.name ?? '';
  if (/^Noop[A-Za-z]*Metric$/.test(name)) return true;
  const storages = (instrument as { _writableMetricStorage?: { _backingStorages?: unknown } })
    ._writableMetricStorage?._backingStorages;
  return Array.isArray(storages) && storages.length === 0;
}
