import { HttpAnswerError, HttpTransportError } from './form-post';
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
 * Judges one failed request to a Google OAuth endpoint (the error
 * {@link FormPoster} threw, or what reading a 200 body threw) for the retry loop and the
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
  if (err instanceof HttpAnswerError) {
    const status = err.status;
    if (status !== 429 && status < 500) return { unhealthy: false, retryable: false };
    const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(err.retryAfter) : undefined;
    return { unhealthy: true, retryable: true, retryAfterMs };
  }
  if (err instanceof HttpTransportError) {
    return { unhealthy: true, retryable: NEVER_SENT_CODES.has(err.code) || options.resendAfterNoAnswer };
  }
  return { unhealthy: true, retryable: false };
}
