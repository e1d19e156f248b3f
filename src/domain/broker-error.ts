/**
 * The closed set of reasons a TokenBroker operation fails with. Each value is
 * sent to callers as google.rpc.ErrorInfo.reason, so values are stable API.
 */
export type BrokerErrorCode =
  | 'INVALID_REQUEST'
  | 'INVALID_AUTH_CODE'
  | 'INVALID_ID_TOKEN'
  | 'CONSENT_REQUIRED'
  | 'USER_NOT_FOUND'
  | 'REAUTH_REQUIRED'
  | 'SCOPE_NOT_GRANTED'
  | 'UPSTREAM_UNAVAILABLE'
  | 'OAUTH_CLIENT_REJECTED'
  | 'STORE_UNAVAILABLE'
  | 'STORED_DATA_UNREADABLE'
  | 'DEADLINE_EXCEEDED'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED';

/**
 * The one error type domain code throws. `message` and `metadata` reach the
 * caller, so they must never hold a token, code or secret; `cause` is kept
 * for the log only and is never sent.
 */
export class BrokerError extends Error {
  override readonly name = 'BrokerError';

  /**
   * @param code stable reason, see {@link BrokerErrorCode}
   * @param message a sentence for people; no secrets
   * @param options.metadata facts callers can branch on (for example the missing scopes)
   * @param options.cause the underlying error, logged but never sent
   */
  constructor(
    readonly code: BrokerErrorCode,
    message: string,
    options: { metadata?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.metadata = options.metadata ?? {};
  }

  /** Facts for the caller, sent as ErrorInfo metadata. */
  readonly metadata: Record<string, string>;
}

/** True when `err` is a {@link BrokerError} with one of `codes` (any code when none given). */
export function isBrokerError(err: unknown, ...codes: BrokerErrorCode[]): err is BrokerError {
  return err instanceof BrokerError && (codes.length === 0 || codes.includes(err.code));
}
