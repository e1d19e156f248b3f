/** One AES-256 key of a {@link Keyset}. */
export interface KeysetKey {
  id: string;
  key: Buffer;
}

/** Encryption keys: every key opens, the primary one seals. */
export interface Keyset {
  primary: KeysetKey;
  byId: ReadonlyMap<string, Buffer>;
}

const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Parses the keyset secret: JSON `{"primary": "<id>", "keys": [{"id": "<id>",
 * "key": "<base64 of 32 bytes>"}]}`. `source` names the setting in errors;
 * the message never contains key material.
 */
export function parseKeyset(json: string, source: string): Keyset {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new Error(`${source}: the encryption keyset is not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null) throw new Error(`${source}: the encryption keyset must be a JSON object`);
  const { primary, keys } = doc as { primary?: unknown; keys?: unknown };
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new Error(`${source}: the encryption keyset needs a non-empty "keys" array`);
  }
  const byId = new Map<string, Buffer>();
  keys.forEach((entry: unknown, i) => {
    const { id, key } = (entry ?? {}) as { id?: unknown; key?: unknown };
    if (typeof id !== 'string' || !KEY_ID.test(id)) {
      throw new Error(`${source}: keys[${i}].id must be 1-64 characters of A-Z a-z 0-9 _ -`);
    }
    if (byId.has(id)) throw new Error(`${source}: key id "${id}" appears twice`);
    const bytes = typeof key === 'string' ? Buffer.from(key, 'base64') : Buffer.alloc(0);
    if (bytes.length !== 32) throw new Error(`${source}: keys[${i}].key must be base64 of exactly 32 random bytes`);
    byId.set(id, bytes);
  });
  if (typeof primary !== 'string' || !byId.has(primary)) {
    throw new Error(`${source}: "primary" must name one of the key ids`);
  }
  return { primary: { id: primary, key: byId.get(primary) as Buffer }, byId };
}
