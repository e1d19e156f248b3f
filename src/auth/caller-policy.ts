import { parseDocument } from 'yaml';
import { normalizeScopes } from '../domain/scopes';

/** The RPCs a policy can grant, by their proto method names. */
export const POLICY_RPCS = ['ExchangeCode', 'GetAccessToken', 'GetProfile', 'GetGrantStatus', 'RevokeUser'] as const;
export type PolicyRpc = (typeof POLICY_RPCS)[number];

/** What one caller may do. */
interface CallerRights {
  rpcs: ReadonlySet<PolicyRpc>;
  /** Sorted scopes the caller may request tokens for (GetAccessToken only). */
  scopes: readonly string[];
  scopeSet: ReadonlySet<string>;
}

/** The policy file is malformed; the message names the file and the entry. */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

/**
 * Which caller identities may call which RPCs and, for GetAccessToken,
 * request which scopes. Loaded once at start from YAML (or JSON, which is
 * YAML) of this shape:
 *
 *     callers:
 *       gateway@PROJECT.iam.gserviceaccount.com:
 *         rpcs: [ExchangeCode, GetProfile]
 *       spiffe://cluster.local/ns/photos/sa/photos:
 *         rpcs: [GetAccessToken]
 *         scopes: [https://www.googleapis.com/auth/drive.readonly]
 *
 * Identities are service-account emails (Google ID tokens) or certificate
 * SANs (SPIFFE URI or DNS name, mutual TLS). Anything not listed is denied.
 */
export class CallerPolicy {
  private constructor(private readonly callers: ReadonlyMap<string, CallerRights>) {}

  /** Parses and validates a policy; `source` names it in errors (the file path). */
  static parse(text: string, source: string): CallerPolicy {
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) {
      throw new PolicyError(`${source}: not valid YAML or JSON (${doc.errors[0]?.code ?? 'parse error'} at line ${lineOf(doc.errors[0]?.linePos)})`);
    }
    const root: unknown = doc.toJS();
    const fail = (where: string, what: string) => new PolicyError(`${source}: ${where} ${what}`);
    if (!isRecord(root)) throw fail('the document', 'must be a mapping with a `callers` key');
    for (const key of Object.keys(root)) if (key !== 'callers') throw fail(`key \`${key}\``, 'is not known (only `callers`)');
    const entries = root.callers;
    if (!isRecord(entries) || Object.keys(entries).length === 0) {
      throw fail('`callers`', 'must map at least one caller identity to its rights');
    }
    const callers = new Map<string, CallerRights>();
    for (const [identity, value] of Object.entries(entries)) {
      const where = `callers["${identity}"]`;
      if (!/^\S{1,512}$/.test(identity)) throw fail(where, 'must name an identity without spaces');
      if (!isRecord(value)) throw fail(where, 'must be a mapping with `rpcs` (and `scopes` for GetAccessToken)');
      for (const key of Object.keys(value)) {
        if (key !== 'rpcs' && key !== 'scopes') throw fail(`${where}.${key}`, 'is not known (only `rpcs` and `scopes`)');
      }
      const rpcs = stringList(value.rpcs);
      if (!rpcs || rpcs.length === 0) throw fail(`${where}.rpcs`, `must list at least one of ${POLICY_RPCS.join(', ')}`);
      for (const rpc of rpcs) {
        if (!(POLICY_RPCS as readonly string[]).includes(rpc)) throw fail(`${where}.rpcs`, `names \`${rpc}\`, not one of ${POLICY_RPCS.join(', ')}`);
      }
      const mayGetTokens = rpcs.includes('GetAccessToken');
      const scopes = value.scopes === undefined ? [] : stringList(value.scopes);
      if (!scopes || scopes.some((s) => !/^\S+$/.test(s))) throw fail(`${where}.scopes`, 'must be a list of scopes without spaces');
      if (mayGetTokens && scopes.length === 0) throw fail(`${where}.scopes`, 'must list the scopes its GetAccessToken calls may request');
      if (!mayGetTokens && scopes.length > 0) throw fail(`${where}.scopes`, 'is only meaningful with GetAccessToken in rpcs');
      let sorted: string[];
      try {
        sorted = normalizeScopes(scopes);
      } catch (err: unknown) {
        throw fail(`${where}.scopes`, err instanceof Error ? err.message : 'is malformed');
      }
      callers.set(identity, { rpcs: new Set(rpcs as PolicyRpc[]), scopes: sorted, scopeSet: new Set(sorted) });
    }
    return new CallerPolicy(callers);
  }

  /** True when `identity` may call `rpc`. */
  permits(identity: string, rpc: PolicyRpc): boolean {
    return this.callers.get(identity)?.rpcs.has(rpc) ?? false;
  }

  /** The sorted scopes `identity` may request (empty when it may not call GetAccessToken). */
  scopesFor(identity: string): readonly string[] {
    return this.callers.get(identity)?.scopes ?? [];
  }

  /** Whether `identity` may request `scope` (policy scopes are checked and normalized at load). */
  allowsScope(identity: string, scope: string): boolean {
    return this.callers.get(identity)?.scopeSet.has(scope) ?? false;
  }

  /** The requested scopes `identity` may not have (empty when all are allowed). */
  forbiddenScopes(identity: string, requested: readonly string[]): string[] {
    const allowed = this.callers.get(identity)?.scopeSet;
    return requested.filter((scope) => !allowed?.has(scope));
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined;
}

function lineOf(pos: readonly [{ line: number }, ...unknown[]] | undefined): string {
  return pos ? String(pos[0].line) : '?';
}
