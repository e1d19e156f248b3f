import { createHash } from 'node:crypto';
import { CliError, usageError } from './cli-error';
import { EXIT } from './exit-codes';

/** What dev-signin asks for unless --scope says otherwise: sign-in plus one API scope to try tokens with. */
export const DEFAULT_SIGNIN_SCOPES = ['openid', 'email', 'profile', 'https://www.googleapis.com/auth/drive.readonly'];

/** Email of the test user when dev-signin is given none. */
export const DEFAULT_DEV_EMAIL = 'dev.user@example.com';

/** A Google account as the local Google's control API takes it. */
export interface DevUser {
  sub: string;
  email: string;
  emailVerified: boolean;
  name: string;
  givenName: string;
  familyName: string;
}

/** What the control API needs to mint a code. */
export interface MintRequest {
  user: DevUser;
  scopes: string[];
  /** True to act as if the user saw the consent screen, so the exchange carries a refresh token. */
  consent: boolean;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * A Google-like account ID derived from `email`: 21 digits starting with 1,
 * as Google's are. The same email always gives the same ID, so signing the
 * same test user in again reaches the same stored grant.
 */
export function subForEmail(email: string): string {
  const digest = createHash('sha256').update(email.trim().toLowerCase()).digest();
  return `1${(digest.readBigUInt64BE(0) % 10n ** 20n).toString().padStart(20, '0')}`;
}

/** The test user for dev-signin: given values, else ones derived from the email ("ann.lee@x" is "Ann Lee"). */
export function devUser(email: string, name?: string, sub?: string): DevUser {
  const words = name?.trim().split(/\s+/) ?? nameFromEmail(email);
  return {
    sub: sub ?? subForEmail(email),
    email,
    emailVerified: true,
    name: words.join(' '),
    givenName: words[0] ?? '',
    familyName: words.slice(1).join(' '),
  };
}

function nameFromEmail(email: string): string[] {
  const local = email.split('@')[0]?.split('+')[0] ?? '';
  const words = local.split(/[._-]+/).filter((w) => w !== '');
  return words.length === 0 ? ['Test', 'User'] : words.map((w) => w.charAt(0).toUpperCase() + w.slice(1));
}

/**
 * Parses the local Google's base URL and refuses anything off this machine:
 * dev-signin mints codes through a test-only API that real Google does not
 * have, and it must never send test traffic anywhere else.
 */
export function loopbackUrl(raw: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usageError(`${source} must be an http URL such as http://127.0.0.1:40123`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usageError(`${source} must be an http URL such as http://127.0.0.1:40123`);
  }
  if (!LOOPBACK_HOSTS.has(url.hostname)) {
    throw usageError(
      `dev-signin is for local development only: ${source} must point at the dev stack's local Google ` +
        `on 127.0.0.1, localhost or [::1], not ${url.host}`,
    );
  }
  return url;
}

/**
 * Asks the local Google's control API (`POST /_control/codes`) for a one-time
 * authorization code, as if `request.user` had signed in through the app.
 * The code is returned, never shown.
 */
export async function mintDevCode(base: URL, request: MintRequest, timeoutMs: number): Promise<string> {
  const where = `the local Google at ${base.origin}`;
  let response: Response;
  try {
    response = await fetch(new URL('/_control/codes', base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
      // A redirect could lead off this machine.
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err: unknown) {
    if (err instanceof Error && err.name === 'TimeoutError') {
      throw new CliError(EXIT.UNREACHABLE, 'DEADLINE_EXCEEDED', `no answer from ${where} within ${timeoutMs / 1000} s`);
    }
    const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined)?.code : undefined;
    throw new CliError(
      EXIT.UNREACHABLE,
      'UNAVAILABLE',
      `cannot reach ${where}${typeof cause === 'string' ? ` (${cause})` : ''}: is the dev stack running? Start it with npm run dev`,
    );
  }
  const body = await readJson(response);
  if (response.ok) {
    if (typeof body.code === 'string' && body.code !== '') return body.code;
    throw new CliError(EXIT.SERVICE_ERROR, 'INTERNAL', `${where} answered without a code`);
  }
  if (response.status === 404) {
    throw new CliError(EXIT.SERVICE_ERROR, 'NOT_FOUND', `${base.origin} has no /_control/codes API: is it the dev stack's local Google?`);
  }
  const description = typeof body.error_description === 'string' ? `: ${body.error_description}` : '';
  throw new CliError(
    EXIT.SERVICE_ERROR,
    response.status === 400 ? 'INVALID_ARGUMENT' : 'INTERNAL',
    `${where} refused to mint a code (HTTP ${response.status})${description}`,
    typeof body.error === 'string' ? body.error : undefined,
  );
}

async function readJson(response: Response): Promise<Record<string, unknown>> {
  try {
    const parsed: unknown = await response.json();
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
