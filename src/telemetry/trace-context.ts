import { type OtelApi, type OtelSpanContext, otelApi } from './otel-api.ts';

/** The W3C trace context fields stored in a notification's context (`traceparent`, `tracestate`). */
export interface TraceContextFields {
  traceparent: string;
  tracestate?: string;
}

/**
 * The active OpenTelemetry span's context as W3C `traceparent` (and `tracestate` if any), or
 * `null` when `@opentelemetry/api` is not installed or no span is active. Formatted here rather than
 * through the global propagator, which is a no-op unless the application registered one.
 */
export function activeTraceContext(): TraceContextFields | null {
  const api = otelApi();
  if (api === null) return null;
  const sc = api.trace.getSpanContext(api.context.active());
  if (sc === undefined || !api.isSpanContextValid(sc)) return null;
  const traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  const tracestate = sc.traceState?.serialize();
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The remote span context a notification's `context.traceparent` names, or undefined. */
export function parseTraceContext(
  api: OtelApi,
  context: Record<string, unknown> | undefined,
): OtelSpanContext | undefined {
  const traceparent = context?.traceparent;
  if (typeof traceparent !== 'string') return undefined;
  const m = TRACEPARENT.exec(traceparent.trim());
  if (!m || m[1] === 'ff') return undefined;
  const sc: OtelSpanContext = {
    traceId: m[2]!,
    spanId: m[3]!,
    traceFlags: Number.parseInt(m[4]!, 16),
    isRemote: true,
  };
  const tracestate = context?.tracestate;
  if (typeof tracestate === 'string' && tracestate && api.createTraceState) {
    sc.traceState = api.createTraceState(tracestate) as OtelSpanContext['traceState'];
  }
  return api.isSpanContextValid(sc) ? sc : undefined;
}
