/**
 * Seeds stored grants for the keep-alive benchmark without going through
 * ExchangeCode: each user gets a real refresh token from the local Google
 * (a minted code redeemed at its token endpoint, as the broker would), and
 * the grant document is written through the service's own
 * FirestoreGrantStore and Sealer, so the job reads exactly what the service
 * would have stored.
 */
import type { Firestore } from '@google-cloud/firestore';
import type { FirestoreDocuments } from '../../src/adapters/firestore/firestore-documents';
import { FirestoreGrantStore } from '../../src/adapters/firestore/firestore-grant-store';
import { Sealer } from '../../src/crypto/sealer';
import { REFRESH_TOKEN_FIELD, riscTokenHash, type GrantRecord, type Profile } from '../../src/domain/grant';
import type { LocalOAuthServer, TestUser } from '../../src/local/oauth-server';
import { mapLimit, type BenchStack, APP_CLIENT_ID, SERVER_CLIENT_ID, SIGN_IN_SCOPES } from '../lib/stack';

const DAY = 24 * 3600_000;

/** What a seeded grant is meant to make the job do. */
export type GrantKind =
  /** Active, unused for longer than the limit, alive at Google: refreshed. */
  | 'due'
  /** Like `due`, but never refreshed: only its sign-in is old. Refreshed. */
  | 'due-never-refreshed'
  /** Due, but the user removed our access at Google: the job finds it dead. */
  | 'dead-at-google'
  /** Refreshed a day ago: skipped. */
  | 'recent'
  /** Already marked REAUTH_REQUIRED in the store: skipped. */
  | 'already-dead';

/** The mix of kinds, by user index: 1% dead at Google, 10% recently used, 0.5% already dead, the rest due. */
export function kindOf(index: number): GrantKind {
  const slot = index % 200;
  if (slot === 0 || slot === 100) return 'dead-at-google';
  if (slot >= 1 && slot <= 10) return 'recent';
  if (slot >= 101 && slot <= 110) return 'recent';
  if (slot === 150) return 'already-dead';
  return slot % 3 === 0 ? 'due-never-refreshed' : 'due';
}

/** How many of each kind `count` users hold. */
export function expectedMix(count: number): Record<GrantKind, number> {
  const mix: Record<GrantKind, number> = { due: 0, 'due-never-refreshed': 0, 'dead-at-google': 0, recent: 0, 'already-dead': 0 };
  for (let i = 0; i < count; i += 1) mix[kindOf(i)] += 1;
  return mix;
}

/** What seeding took. */
export interface SeedResult {
  grants: number;
  mix: Record<GrantKind, number>;
  /** Code redemptions at the local Google. */
  seconds: { tokens: number; documents: number };
}

/**
 * Stores `count` grants in `collection`, all with last-use times relative to
 * `now` (the job's real clock), and revokes the `dead-at-google` ones at the
 * local Google.
 */
export async function seedGrants(stack: BenchStack, db: Firestore, documents: FirestoreDocuments, sealer: Sealer, collection: string, count: number, now: number): Promise<SeedResult> {
  const users = Array.from({ length: count }, () => stack.newUser());
  let t0 = performance.now();
  const refreshTokens = await mapLimit(users, 16, (user) => redeemFirstSignIn(stack.google, stack.clientSecret, user));
  const tokenSeconds = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const store = new FirestoreGrantStore(db, documents, collection, 10_000);
  await mapLimit(users, 32, async (user, i) => {
    const record = grantRecord(sealer, user, refreshTokens[i] as string, kindOf(i), now);
    await store.update(user.sub, () => record);
  });
  const documentSeconds = (performance.now() - t0) / 1000;

  users.forEach((user, i) => {
    if (kindOf(i) === 'dead-at-google') stack.google.revokeUser(user.sub);
  });
  return { grants: count, mix: expectedMix(count), seconds: { tokens: tokenSeconds, documents: documentSeconds } };
}

/** Mints a first sign-in code at the local Google and redeems it at its token endpoint; returns the refresh token. */
async function redeemFirstSignIn(google: LocalOAuthServer, clientSecret: string, user: TestUser): Promise<string> {
  const code = google.mintCode(user, { scopes: SIGN_IN_SCOPES, appClientId: APP_CLIENT_ID });
  const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: '', client_id: SERVER_CLIENT_ID, client_secret: clientSecret });
  const res = await fetch(google.endpoints.tokenUrl, { method: 'POST', body });
  const json = (await res.json()) as { refresh_token?: unknown };
  if (res.status !== 200 || typeof json.refresh_token !== 'string') throw new Error(`seeding: the local Google answered ${res.status} without a refresh token`);
  return json.refresh_token;
}

/** The grant the service would have stored for `user`, aged as `kind` asks. */
function grantRecord(sealer: Sealer, user: TestUser, refreshToken: string, kind: GrantKind, now: number): GrantRecord {
  const signedInAt = now - 400 * DAY;
  const record: GrantRecord = {
    userId: user.sub,
    profile: profileOf(user),
    scopes: [...SIGN_IN_SCOPES].sort(),
    refreshToken: sealer.seal(refreshToken, Sealer.context(user.sub, REFRESH_TOKEN_FIELD)),
    refreshTokenHash: riscTokenHash(refreshToken),
    status: 'ACTIVE',
    signedInAt,
    createdAt: signedInAt,
    updatedAt: now - 160 * DAY,
  };
  if (kind === 'recent') record.lastRefreshedAt = now - DAY;
  else if (kind !== 'due-never-refreshed') record.lastRefreshedAt = now - 160 * DAY;
  if (kind === 'already-dead') {
    record.status = 'REAUTH_REQUIRED';
    record.deadReason = 'invalid_grant';
  }
  return record;
}

/** The profile the ID tokens of the local Google state for `user` (so a refresh finds nothing new to store). */
function profileOf(user: TestUser): Profile {
  return {
    userId: user.sub,
    email: user.email,
    emailVerified: user.emailVerified ?? true,
    name: user.name ?? '',
    pictureUrl: user.picture ?? '',
    locale: user.locale ?? '',
    givenName: user.givenName ?? '',
    familyName: user.familyName ?? '',
    hostedDomain: user.hostedDomain ?? '',
  };
}
