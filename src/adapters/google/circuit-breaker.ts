/**
 * A circuit breaker for one upstream endpoint.
 *
 * - closed: every attempt goes through. `failureThreshold` consecutive failed
 *   attempts open it; any successful attempt resets the count.
 * - open: attempts are refused at once, nothing is sent, for `openMs`.
 * - half-open: after `openMs` the next attempt is the one probe; others are
 *   refused while it runs. Its success closes the breaker, its failure opens
 *   it for another `openMs`.
 *
 * It counts attempts, not calls: one call that retries three times against a
 * failing endpoint adds three failures. The endpoint's health is what is
 * measured, and an attempt is the unit that reaches it; counting calls would
 * let a burst of retrying calls hammer a dead endpoint `retries + 1` times
 * each before the breaker notices. With the defaults (5 failures, 2 retries)
 * two fully failed calls open it.
 *
 * What counts as a failure is the caller's decision ({@link BreakerPermit}):
 * for Google's OAuth endpoints, an attempt with no answer, a 5xx, a 429 or an
 * unreadable 200; an OAuth error answer such as invalid_grant is a success,
 * since Google answered.
 *
 * Time is monotonic (`performance.now()` unless another `now` is given), so
 * wall-clock jumps neither open nor close it.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** Settings of {@link CircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Consecutive failed attempts that open the breaker (at least 1). */
  failureThreshold: number;
  /** How long the breaker stays open before one probe may go through. */
  openMs: number;
  /** Monotonic milliseconds; default `performance.now()`. */
  now?: () => number;
  /** Called on every state change, for logging. */
  onStateChange?: (state: BreakerState) => void;
}

/**
 * The right to send one attempt. Exactly one of its methods should be called
 * once the attempt's outcome is known; later calls are ignored.
 */
export interface BreakerPermit {
  /** The attempt got a usable answer (or an answer proving the endpoint is up). */
  succeeded(): void;
  /** The attempt failed in a way that says the endpoint is unhealthy. */
  failed(): void;
}

/** Guards one endpoint; see the file comment for the states and what is counted. */
export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private consecutiveFailures = 0;
  private openedAt = 0;
  private probeInFlight = false;
  private readonly now: () => number;

  constructor(private readonly options: CircuitBreakerOptions) {
    if (!Number.isInteger(options.failureThreshold) || options.failureThreshold < 1) {
      throw new RangeError(`failureThreshold must be a positive integer, got ${String(options.failureThreshold)}`);
    }
    if (!(options.openMs >= 0)) {
      throw new RangeError(`openMs must be a non-negative number, got ${String(options.openMs)}`);
    }
    this.now = options.now ?? (() => performance.now());
  }

  /** The state as of now (an open breaker whose period has passed reads half-open). */
  get state(): BreakerState {
    if (this.current === 'open' && this.now() - this.openedAt >= this.options.openMs) return 'half-open';
    return this.current;
  }

  /** True when an attempt asked for now would be refused. */
  get refusing(): boolean {
    const state = this.state;
    return state === 'open' || (state === 'half-open' && this.probeInFlight);
  }

  /**
   * A permit to send one attempt, or undefined when the breaker refuses it
   * (open, or half-open with the probe already under way).
   */
  admit(): BreakerPermit | undefined {
    if (this.current === 'open') {
      if (this.now() - this.openedAt < this.options.openMs) return undefined;
      this.transition('half-open');
    }
    if (this.current === 'half-open') {
      if (this.probeInFlight) return undefined;
      this.probeInFlight = true;
      return this.permit(true);
    }
    return this.permit(false);
  }

  private permit(probe: boolean): BreakerPermit {
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      if (probe) this.settleProbe(ok);
      else this.settleAttempt(ok);
    };
    return { succeeded: () => settle(true), failed: () => settle(false) };
  }

  private settleProbe(ok: boolean): void {
    this.probeInFlight = false;
    if (ok) {
      this.consecutiveFailures = 0;
      this.transition('closed');
    } else {
      this.open();
    }
  }

  /**
   * Outcome of an attempt admitted while closed. One that ends after the
   * breaker opened (it was in flight meanwhile) changes nothing: the open
   * period and the probe decide from there.
   */
  private settleAttempt(ok: boolean): void {
    if (this.current !== 'closed') return;
    if (ok) {
      this.consecutiveFailures = 0;
      return;
    }
    this.consecutiveFailures += 1;
    if (this.consecutiveFailures >= this.options.failureThreshold) this.open();
  }

  private open(): void {
    this.openedAt = this.now();
    this.consecutiveFailures = 0;
    this.transition('open');
  }

  private transition(next: BreakerState): void {
    if (next === this.current) return;
    this.current = next;
    this.options.onStateChange?.(next);
  }
}
