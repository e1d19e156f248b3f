import { Counter, type Registry } from 'prom-client';

/** One series' running count; the hot path adds to `n`, nothing else. */
export interface Tally {
  n: number;
}

/**
 * A Prometheus counter family whose series are counted in plain numbers
 * ({@link Tally}) and handed to prom-client only when scraped. Incrementing
 * a prom-client child hashes its labels on every call (about half a
 * microsecond here); a tally costs an addition, which keeps the
 * GetAccessToken cache hit as cheap as it was.
 */
export class TalliedCounter {
  private readonly counter: Counter;
  private readonly cells = new Map<string, { tally: Tally; child: { inc(value: number): void } }>();

  constructor(registry: Registry, name: string, help: string, private readonly labelNames: readonly string[]) {
    const cells = this.cells;
    this.counter = new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      // Runs at each scrape: moves what the tallies gathered into prom-client.
      collect() {
        for (const { tally, child } of cells.values()) {
          if (tally.n === 0) continue;
          child.inc(tally.n);
          tally.n = 0;
        }
      },
    });
  }

  /**
   * The tally of the series with these label values (in labelNames order),
   * created (and exported as 0) on first use. Look it up once and keep it:
   * this call builds a key.
   */
  tally(...values: string[]): Tally {
    const key = values.join('\u0000');
    let cell = this.cells.get(key);
    if (!cell) {
      const labels = Object.fromEntries(this.labelNames.map((label, i) => [label, values[i] ?? '']));
      const child = this.counter.labels(labels);
      child.inc(0);
      cell = { tally: { n: 0 }, child };
      this.cells.set(key, cell);
    }
    return cell.tally;
  }
}
