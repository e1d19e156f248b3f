import { randomBytes } from 'node:crypto';
import type { IdTokenTweaks, TestUser } from './types';

/** An authorization code waiting to be exchanged. */
export interface CodeRecord {
  sub: string;
  scopes: string[];
  azp: string;
  redirectUri: string;
  expiresAtMs: number;
  /** Decided when the code is minted, because that is when Google shows (or skips) the consent screen. */
  issuesRefreshToken: boolean;
  idToken: IdTokenTweaks;
}

/**
 * One authorization: what a code exchange created. It carries a refresh token only
 * when the exchange issued one; access tokens point back at it so revoking any token
 * of the grant kills all of them.
 */
export interface Grant {
  id: number;
  sub: string;
  scopes: string[];
  azp: string;
  refreshToken: string | undefined;
  revoked: boolean;
}

/** A live access token and what it grants. */
export interface AccessTokenRecord {
  grant: Grant;
  scopes: string[];
  expiresAtMs: number;
}

// Prefixes copy Google's formats so log scrubbers written against real tokens get exercised.
function randomToken(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

/**
 * All mutable OAuth state of the local server: codes, grants, tokens, consent and
 * every secret handed out. It knows nothing about HTTP or signing.
 */
export class GrantRegistry {
  private readonly codes = new Map<string, CodeRecord>();
  private readonly grants = new Map<number, Grant>();
  private readonly grantsByRefreshToken = new Map<string, Grant>();
  private readonly accessTokens = new Map<string, AccessTokenRecord>();
  private readonly profiles = new Map<string, TestUser>();
  private readonly consented = new Set<string>();
  private readonly rotationArmed = new Set<string>();
  private readonly secrets: string[] = [];
  private nextGrantId = 1;

  /**
   * Stores a one-time code for `user`, whose profile becomes the one every later ID
   * token of that account carries (a sign-in is when Google's view of the account
   * reaches the app). A user's first code, or one with consent, will carry a refresh token.
   */
  mintCode(user: TestUser, record: Omit<CodeRecord, 'sub' | 'issuesRefreshToken'> & { consent: boolean }): string {
    const { consent, ...rest } = record;
    this.profiles.set(user.sub, { ...user });
    const issuesRefreshToken = consent || !this.consented.has(user.sub);
    this.consented.add(user.sub);
    const code = randomToken('4/0');
    this.codes.set(code, { ...rest, sub: user.sub, issuesRefreshToken });
    this.remember(code);
    return code;
  }

  /**
   * Consumes `code`. Any attempt burns a known code, even one that then fails the
   * redirect_uri or expiry check, because a second try with the same code is exactly
   * what one-time codes exist to stop.
   */
  redeemCode(code: string, redirectUri: string, nowMs: number): CodeRecord | undefined {
    const record = this.codes.get(code);
    if (record === undefined) {
      return undefined;
    }
    this.codes.delete(code);
    if (nowMs >= record.expiresAtMs || record.redirectUri !== redirectUri) {
      return undefined;
    }
    return record;
  }

  /** Turns a redeemed code into a grant, with a fresh refresh token when the code calls for one. */
  createGrant(code: CodeRecord): Grant {
    const grant: Grant = {
      id: this.nextGrantId++,
      sub: code.sub,
      scopes: [...code.scopes],
      azp: code.azp,
      refreshToken: undefined,
      revoked: false,
    };
    this.grants.set(grant.id, grant);
    if (code.issuesRefreshToken) {
      this.setRefreshToken(grant, randomToken('1//'));
    }
    return grant;
  }

  /** The account's current profile. Every grant and code names a user minted through {@link mintCode}. */
  profile(sub: string): TestUser {
    const user = this.profiles.get(sub);
    if (user === undefined) {
      throw new Error(`no profile for user ${sub}`);
    }
    return user;
  }

  /** The live grant a refresh token belongs to. */
  grantForRefreshToken(refreshToken: string): Grant | undefined {
    const grant = this.grantsByRefreshToken.get(refreshToken);
    return grant !== undefined && !grant.revoked ? grant : undefined;
  }

  /** Issues an access token for `scopes` of `grant`. */
  issueAccessToken(grant: Grant, scopes: string[], expiresAtMs: number): string {
    const token = randomToken('ya29.');
    this.accessTokens.set(token, { grant, scopes: [...scopes], expiresAtMs });
    this.remember(token);
    return token;
  }

  /** A live, unexpired access token. */
  accessTokenInfo(token: string, nowMs: number): AccessTokenRecord | undefined {
    const record = this.accessTokens.get(token);
    if (record === undefined || record.grant.revoked || nowMs >= record.expiresAtMs) {
      return undefined;
    }
    return record;
  }

  /** Arms a one-shot refresh-token rotation for the user's next refresh. */
  armRotation(sub: string): void {
    this.rotationArmed.add(sub);
  }

  /**
   * If rotation is armed for the grant's user, replaces the grant's refresh token
   * (the old one stops working at once) and returns the new one.
   */
  rotateIfArmed(grant: Grant): string | undefined {
    if (!this.rotationArmed.delete(grant.sub)) {
      return undefined;
    }
    const next = randomToken('1//');
    this.setRefreshToken(grant, next);
    return next;
  }

  /** Revokes the grant behind an access or refresh token; false when the token is unknown or already dead. */
  revokeByToken(token: string): boolean {
    const grant = this.grantForRefreshToken(token) ?? this.accessTokens.get(token)?.grant;
    if (grant === undefined || grant.revoked) {
      return false;
    }
    this.revokeGrant(grant);
    this.forgetConsentIfNoGrantLeft(grant.sub);
    return true;
  }

  /**
   * Revokes every grant and pending code of the user, as removing the app from the
   * Google account does; the next sign-in shows consent again and so yields a refresh token.
   */
  revokeUser(sub: string): void {
    for (const grant of this.grants.values()) {
      if (grant.sub === sub) {
        this.revokeGrant(grant);
      }
    }
    for (const [code, record] of this.codes) {
      if (record.sub === sub) {
        this.codes.delete(code);
      }
    }
    this.consented.delete(sub);
  }

  /** Every code and token issued so far, oldest first. */
  issuedSecrets(): string[] {
    return [...this.secrets];
  }

  /** Adds a secret minted elsewhere (ID tokens) to {@link issuedSecrets}. */
  remember(secret: string): void {
    this.secrets.push(secret);
  }

  private setRefreshToken(grant: Grant, refreshToken: string): void {
    if (grant.refreshToken !== undefined) {
      this.grantsByRefreshToken.delete(grant.refreshToken);
    }
    grant.refreshToken = refreshToken;
    this.grantsByRefreshToken.set(refreshToken, grant);
    this.remember(refreshToken);
  }

  private revokeGrant(grant: Grant): void {
    grant.revoked = true;
    if (grant.refreshToken !== undefined) {
      this.grantsByRefreshToken.delete(grant.refreshToken);
    }
  }

  // Once nothing of the user's authorization survives, Google treats the next sign-in
  // as a first one; keeping consent would wrongly suppress the refresh token.
  private forgetConsentIfNoGrantLeft(sub: string): void {
    for (const grant of this.grants.values()) {
      if (grant.sub === sub && !grant.revoked) {
        return;
      }
    }
    this.consented.delete(sub);
  }
}
