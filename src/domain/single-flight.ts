/**
 * Runs at most one call per key at a time: callers that arrive while a call
 * for their key is in flight share its result instead of starting another.
 * Used so concurrent GetAccessToken calls for one user make one refresh.
 */
export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  /** Number of keys with a call in flight. */
  get size(): number {
    return this.inFlight.size;
  }

  /** Returns the in-flight promise for `key`, or starts `fn` and shares it until it settles. */
  run(key: string, fn: () => Promise<T>): Promise<T> {
    const existing = this.inFlight.get(key);
    if (existing) return existing;
    const started = fn().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, started);
    return started;
  }
}
