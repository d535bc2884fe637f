import type { ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { PgPubSubError } from '../../errors.ts';
import type { Attributes, OtelBatchResult, OtelMeter } from '../../telemetry/otel-api.ts';

/** The part of prom-client used here (imported only when `--metrics-port` is given). */
type PromClient = typeof import('prom-client');
type Registry = import('prom-client').Registry;
type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** Loads prom-client (an optional peer dependency), or says how to install it. */
export async function loadPromClient(): Promise<PromClient> {
  try {
    const mod = (await import('prom-client')) as PromClient & { default?: PromClient };
    return mod.Registry ? mod : mod.default!;
  } catch (error) {
    throw new PgPubSubError(
      'MISSING_DEPENDENCY',
      '--metrics-port needs the prom-client package: npm install prom-client',
      { cause: error },
    );
  }
}

/** Prometheus's name of an instrument: dots to underscores, the unit as a suffix, `_total` on counters. */
function promName(name: string, unit: string | undefined, counter: boolean): string {
  const base = name.replaceAll('.', '_');
  const withUnit = unit === 's' ? `${base}_seconds` : base;
  return counter ? `${withUnit}_total` : withUnit;
}

/** A metric's one label: the channel (the OTel attribute `messaging.destination.name`). */
function labels(attributes: Attributes | undefined): { channel: string } {
  return { channel: String(attributes?.['messaging.destination.name'] ?? '') };
}

/**
 * A meter (the part of OpenTelemetry's the listener uses) that records into a prom-client
 * registry, so the CLI serves the same metrics as an OpenTelemetry setup without one
 * (docs/observability.md has the names). Gauges aggregate across workers by `max` (every worker
 * sees the same backlog); counters and histograms by sum.
 */
export function promMeter(client: PromClient, registry: Registry): OtelMeter {
  const registers = [registry];
  return {
    createCounter(name, options = {}) {
      const counter = new client.Counter({
        name: promName(name, options.unit, true),
        help: options.description ?? name,
        labelNames: ['channel'],
        registers,
      });
      return { add: (value, attributes) => counter.inc(labels(attributes), value) };
    },
    createHistogram(name, options = {}) {
      const buckets = options.advice?.explicitBucketBoundaries;
      const histogram = new client.Histogram({
        name: promName(name, options.unit, false),
        help: options.description ?? name,
        labelNames: ['channel'],
        ...(buckets ? { buckets } : {}),
        registers,
      });
      return { record: (value, attributes) => histogram.observe(labels(attributes), value) };
    },
    createObservableGauge(name, options = {}) {
      return new client.Gauge({
        name: promName(name, options.unit, false),
        help: options.description ?? name,
        labelNames: ['channel'],
        aggregator: 'max',
        registers,
      });
    },
    addBatchObservableCallback(callback, observables) {
      const gauges = observables as import('prom-client').Gauge[];
      const first = gauges[0];
      if (!first) return;
      const result: OtelBatchResult = {
        observe: (instrument, value, attributes) =>
          (instrument as import('prom-client').Gauge).set(labels(attributes), value),
      };
      // prom-client collects metrics in registration order: the first gauge's collect fills all.
      (first as unknown as { collect: () => Promise<void> }).collect = async () => {
        for (const g of gauges) g.reset();
        await callback(result);
      };
    },
  };
}

/** Serves `text()` at `GET /metrics` on host:port; resolves with the server once listening. */
export function serveMetrics(
  host: string,
  port: number,
  text: () => Promise<{ body: string; contentType: string }>,
): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: metrics are at /metrics\n');
      return;
    }
    text().then(
      ({ body, contentType }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (error: unknown) =>
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error)?.message ?? error}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** The message a worker sends the supervisor with its metrics (answer to `{ type: 'metrics' }`). */
export interface MetricsReply {
  type: 'metrics';
  id: number;
  metrics: MetricJson;
}

/** Sums the workers' metrics (prom-client's AggregatorRegistry rules) into Prometheus text. */
export async function aggregateText(
  client: PromClient,
  parts: MetricJson[],
): Promise<{ body: string; contentType: string }> {
  const registry = client.AggregatorRegistry.aggregate(parts);
  return { body: await registry.metrics(), contentType: registry.contentType };
}

let nextRequest = 0;

/**
 * Asks every running worker for its metrics over IPC (`{ type: 'metrics', id }`) and sums them. A
 * worker that does not answer within `timeoutMs` (starting, stopping) is left out of this scrape.
 */
export async function collectFromWorkers(
  client: PromClient,
  children: ChildProcess[],
  timeoutMs = 2000,
): Promise<{ body: string; contentType: string }> {
  const id = ++nextRequest;
  const parts = await Promise.all(
    children.map(
      (child) =>
        new Promise<MetricJson | null>((resolve) => {
          if (!child.connected) return resolve(null);
          const timer = setTimeout(() => finish(null), timeoutMs);
          const onMessage = (message: unknown) => {
            const reply = message as Partial<MetricsReply> | null;
            if (reply?.type === 'metrics' && reply.id === id) finish(reply.metrics ?? null);
          };
          const finish = (value: MetricJson | null) => {
            clearTimeout(timer);
            child.off('message', onMessage);
            child.off('exit', onExit);
            resolve(value);
          };
          const onExit = () => finish(null);
          child.on('message', onMessage);
          child.once('exit', onExit);
          child.send({ type: 'metrics', id }, (error) => {
            if (error) finish(null);
          });
        }),
    ),
  );
  return aggregateText(
    client,
    parts.filter((p): p is MetricJson => p !== null),
  );
}

/** In a worker: answers the supervisor's `{ type: 'metrics', id }` requests with `registry`'s metrics. */
export function answerMetricsRequests(registry: Registry): void {
  process.on('message', (message: { type?: string; id?: number } | null) => {
    if (message?.type !== 'metrics' || typeof message.id !== 'number') return;
    const id = message.id;
    registry.getMetricsAsJSON().then(
      (metrics) => process.send?.({ type: 'metrics', id, metrics } satisfies MetricsReply),
      () => process.send?.({ type: 'metrics', id, metrics: [] }),
    );
  });
}
