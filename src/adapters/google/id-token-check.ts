import type { Certificates } from 'google-auth-library';
import type { GoogleCerts } from './google-certs';

/** The outcome of {@link checkIdToken}: the check's result, or which check failed. */
export type IdTokenCheck<T> = { ok: true; value: T } | { ok: false; failed: string };

/**
 * Runs an ID-token check (google-auth-library's verifier) with Google's
 * current keys and, when it fails on a key ID not seen yet, once more with
 * the keys fetched again (GoogleCerts rate-limits that). A failure keeps
 * only the name of the failed check: the library's messages quote the token.
 */
export async function checkIdToken<T>(certs: GoogleCerts, check: (keys: Certificates) => Promise<T>): Promise<IdTokenCheck<T>> {
  try {
    return { ok: true, value: await check(await certs.current()) };
  } catch (err: unknown) {
    const failed = idTokenFailureKind(err);
    const refetched = failed === 'unknown key id' ? await certs.refetchForUnknownKey() : undefined;
    if (!refetched) return { ok: false, failed };
    try {
      return { ok: true, value: await check(refetched) };
    } catch (again: unknown) {
      return { ok: false, failed: idTokenFailureKind(again) };
    }
  }
}

/**
 * Names which ID-token check failed, from google-auth-library's message
 * prefixes; the messages themselves quote the token and are dropped.
 */
function idTokenFailureKind(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  const kinds: Array<[RegExp, string]> = [
    [/^Invalid token signature/, 'signature'],
    [/^No pem found/, 'unknown key id'],
    [/^Token used too late/, 'expired'],
    [/^Token used too early/, 'not yet valid'],
    [/^Wrong recipient/, 'audience'],
    [/^Invalid issuer/, 'issuer'],
    [/^Wrong number of segments|^Can't parse token/, 'malformed'],
  ];
  for (const [pattern, kind] of kinds) if (pattern.test(message)) return kind;
  return 'other';
}
