import type { ServingStatus } from '../client/health-client';
import {
  googleRevocationToJSON,
  grantStateToJSON,
  type ExchangeCodeResponse,
  type GetAccessTokenResponse,
  type GetGrantStatusResponse,
  type GetProfileResponse,
  type Profile,
  type RevokeUserResponse,
} from '../gen/tokenbroker/v1/token_broker';
import type { CliError } from './cli-error';
import { EXIT, type ExitCode } from './exit-codes';

/**
 * What a command produced: aligned lines for people, one object for --json
 * (snake_case, the proto field names), and the exit code.
 */
export interface Outcome {
  lines: string[];
  json: Record<string, unknown>;
  exitCode: ExitCode;
}

/** The result of ExchangeCode (also dev-signin's). */
export function exchangeOutcome(res: ExchangeCodeResponse): Outcome {
  const profile = profileJson(res.profile);
  return {
    lines: table([
      ['user_id', res.userId],
      ['created', String(res.created)],
      ['scopes', res.grantedScopes.join(' ')],
      ...profileRows(profile).filter(([key]) => key !== 'user_id'),
    ]),
    json: { user_id: res.userId, created: res.created, granted_scopes: res.grantedScopes, profile },
    exitCode: EXIT.OK,
  };
}

/** The result of GetAccessToken. The token is printed because it is what was asked for. */
export function tokenOutcome(res: GetAccessTokenResponse, nowMs: number): Outcome {
  const expires = res.expireTime;
  return {
    lines: table([
      ['access_token', res.accessToken],
      ['expires', expires ? `${expires.toISOString()} (in ${duration(expires.getTime() - nowMs)})` : 'unknown'],
      ['scopes', res.scopes.join(' ')],
    ]),
    json: { access_token: res.accessToken, expire_time: expires?.toISOString() ?? null, scopes: res.scopes },
    exitCode: EXIT.OK,
  };
}

/** The result of GetProfile. */
export function profileOutcome(res: GetProfileResponse): Outcome {
  const profile = profileJson(res.profile);
  return { lines: table(profileRows(profile)), json: { profile }, exitCode: EXIT.OK };
}

/** The result of GetGrantStatus: state, why it is dead, scopes and times; it holds no token. */
export function grantStatusOutcome(res: GetGrantStatusResponse): Outcome {
  const state = grantStateToJSON(res.state).replace(/^GRANT_STATE_/, '');
  const time = (t: Date | undefined) => t?.toISOString() ?? null;
  return {
    lines: table([
      ['state', state],
      ...(res.deadReason !== '' ? [['dead_reason', res.deadReason] as [string, string]] : []),
      ['scopes', res.scopes.join(' ')],
      ['created', time(res.createTime) ?? 'unknown'],
      ['signed_in', time(res.signInTime) ?? 'unknown'],
      ['last_refresh', time(res.lastRefreshTime) ?? 'never'],
    ]),
    json: {
      state,
      dead_reason: res.deadReason,
      scopes: res.scopes,
      create_time: time(res.createTime),
      sign_in_time: time(res.signInTime),
      last_refresh_time: time(res.lastRefreshTime),
    },
    exitCode: EXIT.OK,
  };
}

/**
 * The result of RevokeUser. Success even when Google's confirmation is
 * PENDING: the stored grant is gone, and the retry-revocations job finishes
 * the revocation at Google.
 */
export function revokeOutcome(res: RevokeUserResponse): Outcome {
  const google = googleRevocationToJSON(res.googleRevocation).replace(/^GOOGLE_REVOCATION_/, '');
  const note: Record<string, string> = {
    DONE: ' (Google revoked the grant)',
    PENDING: ' (Google not reached; the retry-revocations job will retry)',
    NOT_NEEDED: ' (nothing to revoke at Google)',
  };
  return {
    lines: table([
      ['was_stored', String(res.wasStored)],
      ['google_revocation', `${google}${note[google] ?? ''}`],
    ]),
    json: { was_stored: res.wasStored, google_revocation: google },
    exitCode: EXIT.OK,
  };
}

/** The answer of a health check: success only when SERVING. */
export function healthOutcome(service: string, status: ServingStatus): Outcome {
  return {
    lines: [service === '' ? status : `${service}: ${status}`],
    json: { service, status },
    exitCode: status === 'SERVING' ? EXIT.OK : EXIT.SERVICE_ERROR,
  };
}

/** An error for people: `NOT_FOUND USER_NOT_FOUND: no grant is stored for this user`, then its metadata. */
export function errorLines(err: CliError): string[] {
  const head = `${err.code}${err.reason ? ` ${err.reason}` : ''}: ${err.message}`;
  return [head, ...Object.entries(err.metadata ?? {}).map(([key, value]) => `  ${key}: ${value}`)];
}

/** An error for --json: `{"error":{"code":"NOT_FOUND","reason":"USER_NOT_FOUND","message":"..."}}`. */
export function errorJson(err: CliError): Record<string, unknown> {
  return {
    error: {
      code: err.code,
      ...(err.reason ? { reason: err.reason } : {}),
      message: err.message,
      ...(err.metadata ? { metadata: err.metadata } : {}),
    },
  };
}

type ProfileJson = Record<keyof typeof PROFILE_FIELDS, string | boolean>;

// Proto field names, in the proto's order.
const PROFILE_FIELDS = {
  user_id: 'userId',
  email: 'email',
  email_verified: 'emailVerified',
  name: 'name',
  given_name: 'givenName',
  family_name: 'familyName',
  picture_url: 'pictureUrl',
  locale: 'locale',
  hosted_domain: 'hostedDomain',
} as const satisfies Record<string, keyof Profile>;

function profileJson(profile: Profile | undefined): ProfileJson | null {
  if (!profile) return null;
  const entries = Object.entries(PROFILE_FIELDS).map(([key, field]) => [key, profile[field]]);
  return Object.fromEntries(entries) as ProfileJson;
}

function profileRows(profile: ProfileJson | null): [string, string][] {
  if (!profile) return [['profile', '(none)']];
  const rows: [string, string][] = [];
  for (const [key, value] of Object.entries(profile)) {
    if (key === 'email_verified' || value === '') continue;
    const verified = key === 'email' ? (profile.email_verified ? ' (verified)' : ' (not verified)') : '';
    rows.push([key, `${String(value)}${verified}`]);
  }
  return rows;
}

function table(rows: [string, string][]): string[] {
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `${key.padEnd(width)}  ${value}`);
}

/** "59m 58s", "1h 0m", "12s"; negative spans read "0s" (already expired by the local clock). */
function duration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}
