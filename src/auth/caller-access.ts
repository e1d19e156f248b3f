import { BrokerError } from '../domain/broker-error';
import { normalizeScopes } from '../domain/scopes';
import type { CallerAuthenticator, CallerCredentials } from './caller-authenticator';
import type { CallerPolicy, PolicyRpc } from './caller-policy';

/** Who is calling, once admitted. */
export interface Caller {
  identity: string;
}

/**
 * The gate every RPC (health aside) passes before any lookup: authenticate
 * the caller, then check the policy allows it this RPC and, for
 * GetAccessToken, the scopes it asks for. Denials depend only on the
 * caller and the request, never on stored data, so they answer alike
 * whether or not the user exists.
 */
export interface CallerAccess {
  admit(credentials: CallerCredentials, rpc: PolicyRpc): Promise<Caller>;
  /**
   * The caller {@link admit} would resolve with, when that is known without
   * I/O; undefined otherwise, including whenever admit would refuse.
   */
  admitNow(credentials: CallerCredentials, rpc: PolicyRpc): Caller | undefined;
  /**
   * The scopes a GetAccessToken call gets: those asked for, if the policy
   * allows them all (else PERMISSION_DENIED); for an empty request, the
   * caller's whole allowance, so no caller ever gets a token wider than its policy.
   */
  scopesFor(caller: Caller, requested: readonly string[]): readonly string[];
}

/** Authentication and policy both enforced: what production runs. */
export class EnforcedAccess implements CallerAccess {
  /** One Caller per identity seen, so admitting a known caller allocates nothing. */
  private readonly callers = new Map<string, Caller>();

  constructor(
    private readonly authenticator: CallerAuthenticator,
    private readonly policy: CallerPolicy,
  ) {}

  async admit(credentials: CallerCredentials, rpc: PolicyRpc): Promise<Caller> {
    const identity = await this.authenticator.authenticate(credentials);
    if (!this.policy.permits(identity, rpc)) {
      throw new BrokerError('PERMISSION_DENIED', `this caller may not call ${rpc}`, { metadata: { caller: identity, rpc } });
    }
    return this.callerFor(identity);
  }

  admitNow(credentials: CallerCredentials, rpc: PolicyRpc): Caller | undefined {
    const identity = this.authenticator.knownIdentity(credentials);
    return identity !== undefined && this.policy.permits(identity, rpc) ? this.callerFor(identity) : undefined;
  }

  scopesFor(caller: Caller, requested: readonly string[]): readonly string[] {
    if (requested.length === 0) return this.policy.scopesFor(caller.identity);
    // The usual request: one scope, which the policy lists (so it is valid as it stands).
    if (requested.length === 1 && this.policy.allowsScope(caller.identity, requested[0] as string)) return requested;
    const wanted = normalizeScopes(requested);
    const forbidden = this.policy.forbiddenScopes(caller.identity, wanted);
    if (forbidden.length > 0) {
      throw new BrokerError('PERMISSION_DENIED', 'this caller may not request some of these scopes', {
        metadata: { caller: caller.identity, forbiddenScopes: forbidden.join(' ') },
      });
    }
    return wanted;
  }

  /** Only identities the policy names get here, so the map is as bounded as the policy. */
  private callerFor(identity: string): Caller {
    let caller = this.callers.get(identity);
    if (!caller) {
      caller = Object.freeze({ identity });
      this.callers.set(identity, caller);
    }
    return caller;
  }
}

/**
 * No authentication at all, for local development only: every call is
 * admitted as `insecure-dev` and gets what it asks for (an empty scope
 * request means the whole grant). Selected only by
 * TOKENBROKER_CALLER_AUTH=insecure-none, and logged loudly at start.
 */
export class InsecureOpenAccess implements CallerAccess {
  private readonly caller: Caller = Object.freeze({ identity: 'insecure-dev' });

  admit(): Promise<Caller> {
    return Promise.resolve(this.caller);
  }

  admitNow(): Caller {
    return this.caller;
  }

  scopesFor(_caller: Caller, requested: readonly string[]): readonly string[] {
    return requested;
  }
}
