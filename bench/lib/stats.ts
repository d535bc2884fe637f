/** Median, min and max of the repetitions of one measurement, with the raw values kept. */
export interface Summary {
  values: number[];
  median: number;
  min: number;
  max: number;
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    values,
    median: quantile(sorted, 0.5),
    min: sorted[0] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

/** p50/p99 etc. of a sample. */
export function percentiles(sample: number[], qs: number[]): number[] {
  const sorted = [...sample].sort((a, b) => a - b);
  return qs.map((q) => quantile(sorted, q));
}

/** One row of a workload: a system configuration and its metrics over the repetitions. */
export interface Row {
  key: string;
  label: string;
  system: string;
  metrics: Record<string, Summary>;
  /** Anything else worth keeping (per repetition). */
  extra: Record<string, unknown[]>;
}

/** Collects measurements per row and metric, across repetitions. */
export class Recorder {
  private readonly rows = new Map<
    string,
    {
      key: string;
      label: string;
      system: string;
      metrics: Map<string, number[]>;
      extra: Map<string, unknown[]>;
    }
  >();

  add(
    row: { key: string; label: string; system: string },
    metrics: Record<string, number>,
    extra: Record<string, unknown> = {},
  ): void {
    let r = this.rows.get(row.key);
    if (!r) {
      r = { ...row, metrics: new Map(), extra: new Map() };
      this.rows.set(row.key, r);
    }
    for (const [name, value] of Object.entries(metrics)) {
      const list = r.metrics.get(name) ?? [];
      list.push(value);
      r.metrics.set(name, list);
    }
    for (const [name, value] of Object.entries(extra)) {
      const list = r.extra.get(name) ?? [];
      list.push(value);
      r.extra.set(name, list);
    }
  }

  result(): Row[] {
    return [...this.rows.values()].map((r) => ({
      key: r.key,
      label: r.label,
      system: r.system,
      metrics: Object.fromEntries([...r.metrics].map(([k, v]) => [k, summarize(v)])),
      extra: Object.fromEntries(r.extra),
    }));
  }
}

/** `items` rotated by `rep`, so the order of systems changes between repetitions. */
export function rotate<T>(items: T[], rep: number): T[] {
  const k = items.length === 0 ? 0 : rep % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
