import { Timestamp, type DocumentData } from '@google-cloud/firestore';
import type { SharedTokenRecord } from '../../domain/ports';

/**
 * The Firestore shape of a shared token record. `delete_after` is when the
 * record stops being of any use (token expired, lease over): a Firestore
 * TTL policy on it removes stale records (see the README).
 */
export function sharedTokenToDocument(record: SharedTokenRecord): DocumentData {
  const doc: DocumentData = { user_id: record.userId, scope_key: record.scopeKey };
  let deleteAfter = 0;
  if (record.lease) {
    doc.lease_holder = record.lease.holder;
    doc.lease_until = Timestamp.fromMillis(record.lease.until);
    deleteAfter = record.lease.until;
  }
  if (record.token) {
    doc.token = { key_id: record.token.sealed.keyId, iv: record.token.sealed.iv, ciphertext: record.token.sealed.ciphertext };
    doc.expires_at = Timestamp.fromMillis(record.token.expiresAt);
    doc.scopes = record.token.scopes;
    doc.grant_version = record.token.grantVersion;
    deleteAfter = Math.max(deleteAfter, record.token.expiresAt);
  }
  doc.delete_after = Timestamp.fromMillis(deleteAfter);
  return doc;
}

/**
 * Reads a record back. Parts that do not fit the schema are dropped rather
 * than failing the call: the record is a cache and a lease, and the worst a
 * dropped part costs is one more refresh.
 */
export function sharedTokenFromDocument(userId: string, scopeKey: string, doc: DocumentData): SharedTokenRecord | undefined {
  if (doc.user_id !== userId || doc.scope_key !== scopeKey) return undefined;
  const record: SharedTokenRecord = { userId, scopeKey };
  if (typeof doc.lease_holder === 'string' && doc.lease_until instanceof Timestamp) {
    record.lease = { holder: doc.lease_holder, until: doc.lease_until.toMillis() };
  }
  const sealed = (doc.token ?? {}) as DocumentData;
  if (
    typeof sealed.key_id === 'string' &&
    Buffer.isBuffer(sealed.iv) &&
    Buffer.isBuffer(sealed.ciphertext) &&
    doc.expires_at instanceof Timestamp &&
    Array.isArray(doc.scopes) &&
    typeof doc.grant_version === 'string'
  ) {
    record.token = {
      sealed: { keyId: sealed.key_id, iv: sealed.iv, ciphertext: sealed.ciphertext },
      expiresAt: doc.expires_at.toMillis(),
      scopes: (doc.scopes as unknown[]).filter((s): s is string => typeof s === 'string'),
      grantVersion: doc.grant_version,
    };
  }
  return record;
}
