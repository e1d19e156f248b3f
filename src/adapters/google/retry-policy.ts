import type { Deadline } from '../../domain/deadline';
import type { CircuitBreaker } from './circuit-breaker';

/**
 * Longest backoff between two attempts, whatever the attempt number and the
 * configured first backoff. The default call budget is 10 s: a longer sleep
 * would leave too little of it for the attempt that follows, and a server
 * that is down for longer is the circuit breaker's business, not a sleep's.
 * A Retry-After is not capped by this; the call's deadline bounds it.
 */
export const MAX_BACKOFF_MS = 5_000;

/** How many attempts, and how long to wait between them. */
export interface RetryPolicy {
  /** Attempts in all: 1 + retries. */
  maxAttempts: number;
  /** Upper bound of the first backoff; doubles per retry, up to {@link MAX_BACKOFF_MS}. */
  backoffMs: number;
  /** Uniform in [0, 1); default Math.random. */
  random?: () => number;
}

/** How one failed attempt is treated. */
export interface FailureVerdict {
  /** The endpoint looks unhealthy: counts as a failure for its circuit breaker. */
  unhealthy: boolean;
  /** Another attempt could succeed and is safe to send. */
  retryable: boolean;
  /** How long the server asked us to wait (Retry-After), when it did. */
  retryAfterMs?: number;
}

/** Thrown, without sending anything, when the endpoint's circuit breaker refuses an attempt. */
export class BreakerOpenError extends Error {
  override readonly name = 'BreakerOpenError';

  constructor() {
    super('the circuit breaker refused the attempt');
  }
}

/**
 * Full-jitter backoff before retry number `retry` (1 for the first retry):
 * uniform in [0, min(MAX_BACKOFF_MS, backoffMs * 2^(retry-1))), whole ms.
 */
export function backoffDelayMs(retry: number, backoffMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, backoffMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
}

/**
 * Runs `attempt` until it succeeds, a failure is final, attempts run out, the
 * breaker opens, or the next wait would not end before `deadline`.
 *
 * - Each attempt needs a permit from `breaker`; a refused one throws
 *   {@link BreakerOpenError}. Every outcome is reported to the breaker
 *   (`judge` says whether a failure means the endpoint is unhealthy).
 * - The wait before a retry is the server's Retry-After when it sent one,
 *   else {@link backoffDelayMs}. When that wait would not end before the
 *   deadline, retrying stops at once with the last failure: no sleep runs
 *   past the deadline and no attempt starts after it.
 * - `attempt` itself is never cut at the deadline (see the caller).
 *
 * Rejects with the last attempt's own error, or BreakerOpenError.
 */
export async function withRetries<T>(
  attempt: () => Promise<T>,
  judge: (err: unknown) => FailureVerdict,
  context: { policy: RetryPolicy; deadline: Deadline; breaker: CircuitBreaker },
): Promise<T> {
  const { policy, deadline, breaker } = context;
  for (let number = 1; ; number += 1) {
    const permit = breaker.admit();
    if (!permit) throw new BreakerOpenError();
    let failure: unknown;
    try {
      const value = await attempt();
      permit.succeeded();
      return value;
    } catch (err: unknown) {
      failure = err;
    }
    const verdict = judge(failure);
    if (verdict.unhealthy) permit.failed();
    else permit.succeeded();
    if (!verdict.retryable || number >= policy.maxAttempts) throw failure;
    const waitMs = verdict.retryAfterMs ?? backoffDelayMs(number, policy.backoffMs, policy.random);
    if (waitMs >= deadline.remainingMs()) throw failure;
    // This failure (or others in flight) may have opened the breaker: sleeping would only delay the refusal.
    if (breaker.refusing) throw new BreakerOpenError();
    await sleep(waitMs);
    if (deadline.expired) throw failure;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
