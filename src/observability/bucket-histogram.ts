import type { Histogram, Registry } from 'prom-client';

/** One series: counts per bucket (not cumulative), their sum and count. */
export interface HistogramSeries {
  observe(seconds: number): void;
}

interface Series extends HistogramSeries {
  labels: Record<string, string>;
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram family registered in a prom-client registry, with
 * series bound once and observed without allocating or hashing labels
 * (prom-client's own histogram hashes the label set on each observation,
 * over a microsecond here, on the path every RPC takes). The registry
 * renders it like any histogram: `_bucket{le}` (cumulative), `_sum`, `_count`.
 */
export class BucketHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, Series>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly bounds: readonly number[],
  ) {
    // The registry needs only name, help, type, aggregator, get() and reset().
    registry.registerMetric(this as unknown as Histogram);
  }

  /** The series with these label values (in labelNames order), created on first use. Keep it: this call builds a key. */
  bind(...values: string[]): HistogramSeries {
    const key = values.join('\u0000');
    let series = this.series.get(key);
    if (!series) {
      const bounds = this.bounds;
      const counts = new Float64Array(bounds.length + 1);
      const created: Series = {
        labels: Object.fromEntries(this.labelNames.map((label, i) => [label, values[i] ?? ''])),
        buckets: counts,
        sum: 0,
        count: 0,
        observe(seconds: number) {
          let i = 0;
          while (i < bounds.length && seconds > (bounds[i] as number)) i += 1;
          counts[i] = (counts[i] as number) + 1;
          created.sum += seconds;
          created.count += 1;
        },
      };
      series = created;
      this.series.set(key, series);
    }
    return series;
  }

  /** The family in prom-client's export shape. */
  get() {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i += 1) {
        cumulative += s.buckets[i] as number;
        values.push({ labels: { ...s.labels, le: i < this.bounds.length ? (this.bounds[i] as number) : '+Inf' }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** Zeroes every series (prom-client's registry.resetMetrics()). */
  reset(): void {
    for (const s of this.series.values()) {
      s.buckets.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
