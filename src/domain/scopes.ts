import { BrokerError } from './broker-error';

/** Most scopes a request may name; Google grants far fewer in practice. */
const MAX_SCOPES = 50;
/** A scope is a URL or a short name: printable ASCII without spaces. */
const SCOPE = /^[\x21-\x7e]{1,512}$/;

/**
 * Checks the scopes a caller asked for and returns them sorted without
 * duplicates, so equal sets have one spelling (used as a cache key).
 */
export function normalizeScopes(scopes: readonly string[]): string[] {
  if (scopes.length > MAX_SCOPES) {
    throw new BrokerError('INVALID_REQUEST', `scopes may list at most ${MAX_SCOPES} entries`, {
      metadata: { field: 'scopes' },
    });
  }
  for (const scope of scopes) {
    if (!SCOPE.test(scope)) {
      throw new BrokerError('INVALID_REQUEST', 'each scope must be 1 to 512 printable characters without spaces', {
        metadata: { field: 'scopes' },
      });
    }
  }
  return [...new Set(scopes)].sort();
}

/** Splits the space-separated `scope` field of an OAuth token response into a sorted list. */
export function parseScopeString(scope: string | undefined): string[] {
  if (!scope) return [];
  return [...new Set(scope.split(' ').filter((s) => s.length > 0))].sort();
}

/** The members of `wanted` that `granted` lacks. */
export function missingScopes(wanted: readonly string[], granted: readonly string[]): string[] {
  const have = new Set(granted);
  return wanted.filter((s) => !have.has(s));
}
