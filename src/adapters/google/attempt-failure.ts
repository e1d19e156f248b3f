import { GaxiosError } from 'gaxios';
import { parseRetryAfter } from './retry-after';
import type { FailureVerdict } from './retry-policy';

/**
 * Transport error codes raised before a request leaves this host (DNS,
 * connect): Google cannot have seen the request, so resending it is always
 * safe. Anything else without an answer (timeout, reset, a body cut off) may
 * have reached Google.
 */
const NEVER_SENT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Judges one failed request to a Google OAuth endpoint (the error gaxios
 * threw, or what reading a 200 body threw) for the retry loop and the
 * circuit breaker:
 *
 * - HTTP 5xx and 429: unhealthy, retryable; a 429 or 503 may carry Retry-After.
 * - any other HTTP answer (400 invalid_grant, 401 invalid_client, ...): Google
 *   is up and has decided; healthy, final.
 * - no answer: unhealthy; retryable only when `resendAfterNoAnswer` allows it
 *   or the request never left this host.
 * - anything else (a 200 whose body is unusable): unhealthy, final. Google
 *   has acted on the request; sending it again cannot recover that answer.
 *
 * @param options.resendAfterNoAnswer false for requests that must not reach
 *   Google twice (a one-time code)
 */
export function judgeAttemptFailure(err: unknown, options: { resendAfterNoAnswer: boolean }): FailureVerdict {
  if (!(err instanceof GaxiosError)) return { unhealthy: true, retryable: false };
  const response = err.response;
  if (response) {
    const status = response.status;
    if (status !== 429 && status < 500) return { unhealthy: false, retryable: false };
    const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(response.headers.get('retry-after')) : undefined;
    return { unhealthy: true, retryable: true, retryAfterMs };
  }
  const neverSent = typeof err.code === 'string' && NEVER_SENT_CODES.has(err.code);
  return { unhealthy: true, retryable: neverSent || options.resendAfterNoAnswer };
}

/**
 * A short name for a transport failure without an answer, safe to log: the
 * system error code (ECONNRESET, ...), TIMEOUT for the per-attempt timeout,
 * or undefined. Nothing else of the error is read: it holds the request.
 */
export function transportFailureName(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') return String(code);
  const cause = err.cause;
  if (cause instanceof Error && (cause.name === 'AbortError' || cause.name === 'TimeoutError')) return 'TIMEOUT';
  return undefined;
}
