/**
 * The point in time by which one piece of work must be done: the caller's
 * gRPC deadline, capped by the server. Measured on the monotonic clock,
 * because it bounds real waiting (timers, sockets), unlike token expiry,
 * which follows the injected {@link Clock}.
 */
export class Deadline {
  private constructor(private readonly atMs: number) {}

  /** A deadline `ms` from now. */
  static in(ms: number): Deadline {
    return new Deadline(performance.now() + Math.max(0, ms));
  }

  /** Milliseconds left, never negative. */
  remainingMs(): number {
    return Math.max(0, this.atMs - performance.now());
  }

  get expired(): boolean {
    return this.remainingMs() === 0;
  }

  /** The earlier of this deadline and one `ms` from now. */
  within(ms: number): Deadline {
    return Deadline.in(Math.min(ms, this.remainingMs()));
  }
}
