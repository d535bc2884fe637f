import type postgres from 'postgres';
import type { ClaimOutcome } from '../runtime/claim-types.ts';
import { type BacklogSource, observeBacklog } from './backlog.ts';
import { discards, recordingTracer } from './inert.ts';
import {
  type Attributes,
  type OtelApi,
  type OtelCounter,
  type OtelHistogram,
  type OtelMeter,
  type OtelSpan,
  type OtelSpanContext,
  type OtelTracer,
  otelApi,
  SPAN_KIND_CONSUMER,
  SPAN_STATUS_ERROR,
} from './otel-api.ts';
import { parseTraceContext } from './trace-context.ts';

/** Options of `createListener(db, { tracing })` when given as an object. */
export interface TracingOptions {
  /** The tracer provider to use. Default: the global one (`trace.getTracerProvider()`). */
  tracerProvider?: { getTracer(name: string, version?: string): unknown };
}

/** Options of `createListener(db, { metrics })` when given as an object. */
export interface MetricsOptions {
  /** The meter provider to use. Default: the global one (`metrics.getMeterProvider()`). */
  meterProvider?: { getMeter(name: string, version?: string): unknown };
  /**
   * Report `pgpubsub.backlog` and `pgpubsub.oldest_pending_age` (one query per collection per
   * process and storage schema, shared by every listener of the process). Default true.
   */
  backlog?: boolean;
  /**
   * A meter to record to, used as is (installed `@opentelemetry/api` or not): what the CLI's
   * Prometheus endpoint passes (a prom-client adapter). Wins over `meterProvider`.
   */
  meter?: OtelMeter;
}

/** The instrumentation scope name of every span and instrument. */
export const SCOPE = 'drizzle-pgpubsub';
const VERSION = '0.1.0';
const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** An event as a handler gets it (`id`, `attempt`, `createdAt`, `context`, `op`…). */
type EventLike = Readonly<Record<string, unknown>>;

/** Where a listener's spans go: the global tracer provider, or one of the application's own. */
interface TracerSource {
  provider: { getTracer(name: string, version?: string): unknown } | undefined;
}

/**
 * One listener's tracing and metrics (docs/observability.md): instruments are created once, spans
 * per handler call. Exists only when `@opentelemetry/api` is installed (or a meter is given) and
 * tracing or metrics are not turned off. Telemetry nobody can see costs nothing per notification:
 * instruments that discard everything (no meter provider, or one without a reader) are dropped at
 * creation, and each claim asks whether spans would be recorded (an SDK registered, with a span
 * processor); when neither is so, {@link active} is false and the handler runs bare.
 */
export class ListenerTelemetry {
  /** The tracer spans are recorded with now, or undefined (see {@link refresh}). */
  private tracer: OtelTracer | undefined;
  private readonly processed: OtelCounter | undefined;
  private readonly failed: OtelCounter | undefined;
  private readonly retried: OtelCounter | undefined;
  private readonly dead: OtelCounter | undefined;
  private readonly handlerDuration: OtelHistogram | undefined;
  private readonly claimDuration: OtelHistogram | undefined;
  private readonly lag: OtelHistogram | undefined;
  private readonly meter: OtelMeter | undefined;
  private readonly attributes = new Map<string, Attributes>();
  private readonly spanAttributes = new Map<string, Attributes>();
  private unobserve: (() => void) | undefined;
  /** Whether any instrument records (fixed at creation). */
  readonly metered: boolean;

  constructor(
    private readonly api: OtelApi | null,
    private readonly tracing: TracerSource | undefined,
    meter: OtelMeter | undefined,
    private readonly backlog: boolean,
  ) {
    this.refresh();
    if (!meter) {
      this.metered = false;
      return;
    }
    const count = (name: string, description: string) => {
      const c = meter.createCounter(name, { description, unit: '{message}' });
      return discards(c) ? undefined : c;
    };
    const seconds = (name: string, description: string) => {
      const h = meter.createHistogram(name, {
        description,
        unit: 's',
        advice: { explicitBucketBoundaries: SECONDS },
      });
      return discards(h) ? undefined : h;
    };
    this.processed = count('pgpubsub.messages.processed', 'Notifications handled and deleted.');
    this.failed = count('pgpubsub.messages.failed', 'Failed attempts (each retry or dead letter).');
    this.retried = count('pgpubsub.messages.retried', 'Failed attempts that will be retried.');
    this.dead = count('pgpubsub.messages.dead_lettered', 'Notifications that became dead letters.');
    this.handlerDuration = seconds('pgpubsub.handler.duration', 'Handler run time, per call.');
    this.claimDuration = seconds('pgpubsub.claim.duration', 'Claim transaction time, claim to commit.');
    this.lag = seconds(
      'pgpubsub.message.lag',
      'From the notification being written to its handler starting.',
    );
    this.metered = Boolean(
      this.processed ||
        this.failed ||
        this.retried ||
        this.dead ||
        this.handlerDuration ||
        this.claimDuration ||
        this.lag,
    );
    // A meter that discards its counters (no SDK, or no reader) would discard the gauges too.
    if (this.metered) this.meter = meter;
  }

  /** Whether a handler call has anything to record (spans now, or any instrument). */
  get active(): boolean {
    return this.tracer !== undefined || this.metered;
  }

  /** Whether spans are being recorded now. */
  get tracingNow(): boolean {
    return this.tracer !== undefined;
  }

  /**
   * Looks again at the tracer provider (called once per claim): an SDK registered after the
   * listener started is used from the next claim on. Cheap: a few property reads.
   */
  refresh(): void {
    const api = this.api;
    this.tracer =
      api && this.tracing ? recordingTracer(api, this.tracing.provider, SCOPE, VERSION) : undefined;
  }

  /** Starts the backlog gauges' share of this listener (one query per process and schema). */
  start(sql: postgres.Sql, table: string, channels: string[], packed?: string): void {
    if (!this.meter || !this.backlog || channels.length === 0) return;
    const source: BacklogSource = { sql, table, channels, packed };
    this.unobserve = observeBacklog(this.meter, source);
  }

  stop(): void {
    this.unobserve?.();
    this.unobserve = undefined;
  }

  private attrs(channel: string): Attributes {
    let a = this.attributes.get(channel);
    if (!a) {
      a = { 'messaging.system': SCOPE, 'messaging.destination.name': channel };
      this.attributes.set(channel, a);
    }
    return a;
  }

  /** Counts a claim's (or lease's) outcome: one `add` per counter and claim, not per notification. */
  report(channel: string, outcome: ClaimOutcome): void {
    if (!this.metered) return;
    const a = this.attrs(channel);
    if (outcome.processed.length) this.processed?.add(outcome.processed.length, a);
    const failed = outcome.failed.length;
    if (failed === 0) return;
    let dead = 0;
    for (const f of outcome.failed) if (f.dead) dead++;
    this.failed?.add(failed, a);
    if (dead) this.dead?.add(dead, a);
    if (failed > dead) this.retried?.add(failed - dead, a);
  }

  /** Records one claim transaction's duration. */
  claimed(channel: string, ms: number): void {
    this.claimDuration?.record(ms / 1000, this.attrs(channel));
  }

  /**
   * Runs one handler call (`events`: one, or a batch) in a consumer span and records its duration
   * and the events' lag. Single events: the span's parent is the producer's trace context (from
   * `context.traceparent`), also given as a link; batches: a new trace, linked to every producer.
   */
  run<T>(
    channel: string,
    maxAttempts: number,
    events: EventLike[],
    claimStartedAt: number | undefined,
    call: () => Promise<T>,
  ): Promise<T> {
    const tracer = this.tracer;
    const handlerDuration = this.handlerDuration;
    if (tracer === undefined && handlerDuration === undefined && this.lag === undefined) return call();
    const started = performance.now();
    const a = this.attrs(channel);
    const lag = this.lag;
    if (lag) {
      const now = Date.now();
      for (const e of events) {
        if (e.createdAt instanceof Date) lag.record(Math.max(0, now - e.createdAt.getTime()) / 1000, a);
      }
    }
    const api = this.api;
    let span: OtelSpan | undefined;
    let result: Promise<T>;
    if (tracer && api) {
      const active = api.context.active();
      span = this.startSpan(api, tracer, channel, events, started, claimStartedAt, active);
      // A span that carries no context (tracing suppressed here) has nothing to propagate.
      result =
        span.isRecording() || api.isSpanContextValid(span.spanContext())
          ? api.context.with(api.trace.setSpan(active, span), call)
          : call();
    } else {
      result = call();
    }
    if (span === undefined) {
      if (handlerDuration === undefined) return result;
      return result.finally(() => handlerDuration.record((performance.now() - started) / 1000, a));
    }
    const recorded = span;
    return result.then(
      (value) => {
        handlerDuration?.record((performance.now() - started) / 1000, a);
        recorded.end();
        return value;
      },
      (error: unknown) => {
        handlerDuration?.record((performance.now() - started) / 1000, a);
        if (recorded.isRecording()) {
          recorded.recordException(error);
          recorded.setStatus({
            code: SPAN_STATUS_ERROR,
            message: (error as Error)?.message ?? String(error),
          });
          for (const e of events) {
            const dead = typeof e.attempt === 'number' && e.attempt >= maxAttempts;
            recorded.addEvent(dead ? 'pgpubsub.dead_letter' : 'pgpubsub.retry', {
              'messaging.message.id': String(e.id),
              'pgpubsub.attempt': Number(e.attempt),
            });
          }
        }
        recorded.end();
        throw error;
      },
    );
  }

  private startSpan(
    api: OtelApi,
    tracer: OtelTracer,
    channel: string,
    events: EventLike[],
    started: number,
    claimStartedAt: number | undefined,
    active: unknown,
  ): OtelSpan {
    let base = this.spanAttributes.get(channel);
    if (!base) {
      base = {
        ...this.attrs(channel),
        'messaging.operation.type': 'process',
        'messaging.operation': 'process',
      };
      this.spanAttributes.set(channel, base);
    }
    // Trace context is parsed only here, with a recording tracer; most notifications carry none.
    let links: { context: OtelSpanContext }[] | undefined;
    for (const e of events) {
      const sc = parseTraceContext(api, e.context as Record<string, unknown> | undefined);
      if (!sc) continue;
      links ??= [];
      links.push({ context: sc });
    }
    const single = events.length === 1;
    const parent =
      single && links?.length === 1 ? api.trace.setSpanContext(active, links[0]!.context) : active;
    const span = tracer.startSpan(
      `process ${channel}`,
      links
        ? { kind: SPAN_KIND_CONSUMER, attributes: base, links }
        : { kind: SPAN_KIND_CONSUMER, attributes: base },
      parent,
    );
    if (!span.isRecording()) return span;
    if (single) {
      const e = events[0]!;
      span.setAttribute('messaging.message.id', String(e.id));
      span.setAttribute('pgpubsub.attempt', Number(e.attempt));
      if (typeof e.op === 'string') span.setAttribute('pgpubsub.op', e.op);
    } else {
      span.setAttribute('messaging.batch.message_count', events.length);
    }
    if (claimStartedAt !== undefined) {
      span.setAttribute('pgpubsub.claim.wait_ms', Math.max(0, started - claimStartedAt));
    }
    return span;
  }
}

/** Settings a listener resolves its telemetry from. */
export interface TelemetrySettings {
  tracing?: boolean | TracingOptions | undefined;
  metrics?: boolean | MetricsOptions | undefined;
}

/**
 * The listener's telemetry, or `undefined` when there is none to do: `@opentelemetry/api` is not
 * installed (and no meter given), or both tracing and metrics are turned off.
 */
export function listenerTelemetry(settings: TelemetrySettings): ListenerTelemetry | undefined {
  const { tracing = true, metrics = true } = settings;
  const given = typeof metrics === 'object' ? metrics.meter : undefined;
  if (tracing === false && metrics === false) return undefined;
  const api = otelApi();
  if (api === null && !given) return undefined;
  const source: TracerSource | undefined =
    api && tracing !== false
      ? { provider: typeof tracing === 'object' ? tracing.tracerProvider : undefined }
      : undefined;
  let meter = given;
  if (!meter && api && metrics !== false) {
    const provider = typeof metrics === 'object' ? metrics.meterProvider : undefined;
    meter = (
      provider ? provider.getMeter(SCOPE, VERSION) : api.metrics.getMeter(SCOPE, VERSION)
    ) as OtelMeter;
  }
  const backlog = typeof metrics === 'object' ? metrics.backlog !== false : true;
  if (!source && !meter) return undefined;
  return new ListenerTelemetry(api, source, meter, backlog);
}
