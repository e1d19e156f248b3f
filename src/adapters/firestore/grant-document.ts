import { Timestamp, type DocumentData } from '@google-cloud/firestore';
import type { SealedBox } from '../../crypto/sealed-box';
import { BrokerError } from '../../domain/broker-error';
import type { GrantRecord, GrantSecurityEvent, GrantStatus, Profile } from '../../domain/grant';

/** Schema version written into every document, for later migrations. */
const SCHEMA_VERSION = 1;

/**
 * The Firestore shape of a grant. Field names are snake_case as stored;
 * the refresh token is only ever a sealed box (key ID, nonce, ciphertext).
 */
export function grantToDocument(grant: GrantRecord): DocumentData {
  const doc: DocumentData = {
    schema: SCHEMA_VERSION,
    user_id: grant.userId,
    profile: {
      email: grant.profile.email,
      email_verified: grant.profile.emailVerified,
      name: grant.profile.name,
      picture_url: grant.profile.pictureUrl,
      locale: grant.profile.locale,
      given_name: grant.profile.givenName,
      family_name: grant.profile.familyName,
      hosted_domain: grant.profile.hostedDomain,
    },
    scopes: grant.scopes,
    refresh_token: {
      key_id: grant.refreshToken.keyId,
      iv: grant.refreshToken.iv,
      ciphertext: grant.refreshToken.ciphertext,
    },
    status: grant.status,
    created_at: Timestamp.fromMillis(grant.createdAt),
    updated_at: Timestamp.fromMillis(grant.updatedAt),
  };
  if (grant.deadReason !== undefined) doc.dead_reason = grant.deadReason;
  if (grant.signedInAt !== undefined) doc.signed_in_at = Timestamp.fromMillis(grant.signedInAt);
  if (grant.refreshTokenHash !== undefined) doc.refresh_token_hash = grant.refreshTokenHash;
  if (grant.lastRefreshedAt !== undefined) doc.last_refreshed_at = Timestamp.fromMillis(grant.lastRefreshedAt);
  if (grant.securityEvents !== undefined && grant.securityEvents.length > 0) {
    doc.security_events = grant.securityEvents.map(securityEventToDocument);
  }
  return doc;
}

/** Reads a stored grant back; a document that does not fit the schema is STORED_DATA_UNREADABLE. */
export function grantFromDocument(userId: string, doc: DocumentData): GrantRecord {
  const profile = (doc.profile ?? {}) as DocumentData;
  const sealed = (doc.refresh_token ?? {}) as DocumentData;
  if (
    doc.user_id !== userId ||
    !Array.isArray(doc.scopes) ||
    (doc.status !== 'ACTIVE' && doc.status !== 'REAUTH_REQUIRED') ||
    typeof sealed.key_id !== 'string' ||
    !Buffer.isBuffer(sealed.iv) ||
    !Buffer.isBuffer(sealed.ciphertext) ||
    !(doc.created_at instanceof Timestamp) ||
    !(doc.updated_at instanceof Timestamp)
  ) {
    throw new BrokerError('STORED_DATA_UNREADABLE', 'the stored grant does not match the expected schema');
  }
  const refreshToken: SealedBox = { keyId: sealed.key_id, iv: sealed.iv, ciphertext: sealed.ciphertext };
  const grant: GrantRecord = {
    userId,
    profile: readProfile(userId, profile),
    scopes: (doc.scopes as unknown[]).filter((s): s is string => typeof s === 'string'),
    refreshToken,
    status: doc.status as GrantStatus,
    createdAt: doc.created_at.toMillis(),
    updatedAt: doc.updated_at.toMillis(),
  };
  if (typeof doc.dead_reason === 'string') grant.deadReason = doc.dead_reason;
  if (doc.signed_in_at instanceof Timestamp) grant.signedInAt = doc.signed_in_at.toMillis();
  if (typeof doc.refresh_token_hash === 'string') grant.refreshTokenHash = doc.refresh_token_hash;
  if (doc.last_refreshed_at instanceof Timestamp) grant.lastRefreshedAt = doc.last_refreshed_at.toMillis();
  if (Array.isArray(doc.security_events)) {
    const events = (doc.security_events as unknown[]).map(securityEventFromDocument).filter((e): e is GrantSecurityEvent => e !== undefined);
    if (events.length > 0) grant.securityEvents = events;
  }
  return grant;
}

function readProfile(userId: string, p: DocumentData): Profile {
  const text = (v: unknown) => (typeof v === 'string' ? v : '');
  return {
    userId,
    email: text(p.email),
    emailVerified: p.email_verified === true,
    name: text(p.name),
    pictureUrl: text(p.picture_url),
    locale: text(p.locale),
    givenName: text(p.given_name),
    familyName: text(p.family_name),
    hostedDomain: text(p.hosted_domain),
  };
}

/** A Cross-Account Protection event on the grant: `{type, event_time, receive_time, jti, reason?}`. */
function securityEventToDocument(event: GrantSecurityEvent): DocumentData {
  const doc: DocumentData = {
    type: event.type,
    event_time: Timestamp.fromMillis(event.eventTime),
    receive_time: Timestamp.fromMillis(event.receiveTime),
    jti: event.jti,
  };
  if (event.reason !== undefined) doc.reason = event.reason;
  return doc;
}

/** An entry that does not fit is skipped: the list is informational, and the grant must stay readable. */
function securityEventFromDocument(value: unknown): GrantSecurityEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const e = value as DocumentData;
  if (typeof e.type !== 'string' || typeof e.jti !== 'string' || !(e.event_time instanceof Timestamp) || !(e.receive_time instanceof Timestamp)) {
    return undefined;
  }
  const event: GrantSecurityEvent = { type: e.type, eventTime: e.event_time.toMillis(), receiveTime: e.receive_time.toMillis(), jti: e.jti };
  if (typeof e.reason === 'string') event.reason = e.reason;
  return event;
}
