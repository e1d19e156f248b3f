import type { JsonReply } from './http-io';
import type { IdTokenTweaks, MintCodeOptions, OAuthServerStats, SignatureMode, TestUser } from './types';

/** The server operations the control API exposes to other processes. */
export interface ControlTarget {
  mintCode(user: TestUser, options: MintCodeOptions): string;
  revokeUser(sub: string): void;
  stats(): OAuthServerStats;
}

/** Path prefix of the test-control API; nothing real lives under it on Google. */
export const CONTROL_PREFIX = '/_control/';

class ControlInputError extends Error {}

function badRequest(message: string): JsonReply {
  return { status: 400, body: { error: 'invalid_request', error_description: message } };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requiredString(source: Record<string, unknown>, key: string, where: string): string {
  const value = source[key];
  if (typeof value !== 'string' || value === '') {
    throw new ControlInputError(`${where}.${key} must be a non-empty string`);
  }
  return value;
}

function optionalString(source: Record<string, unknown>, key: string, where: string): string | undefined {
  const value = source[key];
  if (value !== undefined && typeof value !== 'string') {
    throw new ControlInputError(`${where}.${key} must be a string`);
  }
  return value;
}

function optionalBoolean(source: Record<string, unknown>, key: string, where: string): boolean | undefined {
  const value = source[key];
  if (value !== undefined && typeof value !== 'boolean') {
    throw new ControlInputError(`${where}.${key} must be a boolean`);
  }
  return value;
}

function optionalNumber(source: Record<string, unknown>, key: string, where: string): number | undefined {
  const value = source[key];
  if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value))) {
    throw new ControlInputError(`${where}.${key} must be a finite number`);
  }
  return value;
}

function parseUser(value: unknown): TestUser {
  if (!isRecord(value)) {
    throw new ControlInputError('user must be an object');
  }
  return {
    sub: requiredString(value, 'sub', 'user'),
    email: requiredString(value, 'email', 'user'),
    emailVerified: optionalBoolean(value, 'emailVerified', 'user'),
    name: optionalString(value, 'name', 'user'),
    givenName: optionalString(value, 'givenName', 'user'),
    familyName: optionalString(value, 'familyName', 'user'),
    picture: optionalString(value, 'picture', 'user'),
    locale: optionalString(value, 'locale', 'user'),
    hostedDomain: optionalString(value, 'hostedDomain', 'user'),
  };
}

const SIGNATURE_MODES: readonly SignatureMode[] = ['valid', 'tampered', 'unknown-kid'];

function isSignatureMode(value: unknown): value is SignatureMode {
  return SIGNATURE_MODES.some((mode) => mode === value);
}

function parseTweaks(value: unknown): IdTokenTweaks | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (!isRecord(value)) {
    throw new ControlInputError('idToken must be an object');
  }
  const signature = value['signature'];
  if (signature !== undefined && !isSignatureMode(signature)) {
    throw new ControlInputError(`idToken.signature must be one of ${SIGNATURE_MODES.join(', ')}`);
  }
  return {
    aud: optionalString(value, 'aud', 'idToken'),
    azp: optionalString(value, 'azp', 'idToken'),
    iss: optionalString(value, 'iss', 'idToken'),
    expiresInSeconds: optionalNumber(value, 'expiresInSeconds', 'idToken'),
    signature,
  };
}

function parseMintRequest(value: unknown): { user: TestUser; options: MintCodeOptions } {
  if (!isRecord(value)) {
    throw new ControlInputError('body must be a JSON object');
  }
  const scopes = value['scopes'];
  if (!Array.isArray(scopes) || !scopes.every((scope): scope is string => typeof scope === 'string')) {
    throw new ControlInputError('scopes must be an array of strings');
  }
  return {
    user: parseUser(value['user']),
    options: {
      scopes,
      consent: optionalBoolean(value, 'consent', 'body'),
      appClientId: optionalString(value, 'appClientId', 'body'),
      redirectUri: optionalString(value, 'redirectUri', 'body'),
      ttlSeconds: optionalNumber(value, 'ttlSeconds', 'body'),
      idToken: parseTweaks(value['idToken']),
    },
  };
}

/**
 * Answers a request under {@link CONTROL_PREFIX}. It exists only because the dev CLI
 * runs in another process and cannot call the server's methods.
 */
export function handleControlRequest(
  target: ControlTarget,
  method: string,
  path: string,
  body: string,
): JsonReply {
  const route = path.slice(CONTROL_PREFIX.length);
  if (route === 'stats') {
    return method === 'GET' ? { status: 200, body: target.stats() } : methodNotAllowed();
  }
  if (route === 'codes') {
    if (method !== 'POST') {
      return methodNotAllowed();
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return badRequest('body must be JSON');
    }
    try {
      const { user, options } = parseMintRequest(parsed);
      return { status: 200, body: { code: target.mintCode(user, options) } };
    } catch (err: unknown) {
      if (err instanceof ControlInputError || err instanceof RangeError) {
        return badRequest(err.message);
      }
      throw err;
    }
  }
  const revoke = /^users\/([^/]+)\/revoke$/.exec(route);
  if (revoke !== null && revoke[1] !== undefined) {
    if (method !== 'POST') {
      return methodNotAllowed();
    }
    let sub: string;
    try {
      sub = decodeURIComponent(revoke[1]);
    } catch {
      return badRequest('malformed user id in path');
    }
    target.revokeUser(sub);
    return { status: 200, body: {} };
  }
  return { status: 404, body: { error: 'not_found' } };
}

function methodNotAllowed(): JsonReply {
  return { status: 405, body: { error: 'method_not_allowed' } };
}
