import { BrokerError } from '../domain/broker-error';

/**
 * Strings shaped like Google credentials: access tokens (ya29.), refresh
 * tokens (1//), auth codes (4/), JWTs (three base64url parts) and any long
 * run of token characters. Applied to foreign error text before it is logged.
 */
const CREDENTIAL_LIKE = /ya29\.[\w.-]+|1\/\/[\w.-]+|4\/[\w.-]+|eyJ[\w-]*\.[\w-]*\.[\w-]*|[\w+/=.-]{32,}/g;

/** Masks every credential-shaped run in `text`. */
export function redact(text: string): string {
  return text.replace(CREDENTIAL_LIKE, '[redacted]');
}

/**
 * Fields that describe an error for the log without leaking secrets: our
 * own errors as they are (their messages are written to be safe), foreign
 * ones by name, code and a redacted message, and the cause chain likewise.
 */
export function describeError(err: unknown, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err };
  const out: Record<string, unknown> = { name: err.name };
  if (err instanceof BrokerError) {
    out.code = err.code;
    out.message = err.message;
  } else {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') out.code = code;
    out.message = redact(err.message).slice(0, 300);
  }
  if (err.cause !== undefined && depth < 3) out.cause = describeError(err.cause, depth + 1);
  return out;
}
