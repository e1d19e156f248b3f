import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { BrokerError } from '../domain/broker-error';
import type { Keyset } from './keyset';
import type { SealedBox } from './sealed-box';

const ALGORITHM = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Seals secrets for storage with AES-256-GCM under the keyset's primary key,
 * binding each box to a context string (user and field) as associated data.
 */
export class Sealer {
  /** @param keyset keys to seal with (primary) and open with (all) */
  constructor(private readonly keyset: Keyset) {}

  /** The associated data that binds a box to one field of one user's record. */
  static context(userId: string, field: string): string {
    return `tokenbroker.v1/${userId}/${field}`;
  }

  /** ID of the key new boxes are sealed with. */
  get primaryKeyId(): string {
    return this.keyset.primary.id;
  }

  /** Opens `box` and seals its content again under the primary key (key rotation). */
  reseal(box: SealedBox, context: string): SealedBox {
    return this.seal(this.open(box, context), context);
  }

  /** Seals `plaintext` for `context` under the primary key with a fresh random nonce. */
  seal(plaintext: string, context: string): SealedBox {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.keyset.primary.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return { keyId: this.keyset.primary.id, iv, ciphertext: body };
  }

  /**
   * Opens a box sealed for `context`. Any failure (unknown key, tampering,
   * a box from another user or field) throws STORED_DATA_UNREADABLE.
   */
  open(box: SealedBox, context: string): string {
    const key = this.keyset.byId.get(box.keyId);
    if (!key) {
      throw new BrokerError('STORED_DATA_UNREADABLE', 'a stored credential was sealed with a key this server does not hold', {
        metadata: { keyId: box.keyId },
      });
    }
    if (box.iv.length !== IV_BYTES || box.ciphertext.length <= TAG_BYTES) {
      throw new BrokerError('STORED_DATA_UNREADABLE', 'a stored credential is malformed');
    }
    try {
      const decipher = createDecipheriv(ALGORITHM, key, box.iv);
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(box.ciphertext.subarray(box.ciphertext.length - TAG_BYTES));
      const body = box.ciphertext.subarray(0, box.ciphertext.length - TAG_BYTES);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch (err: unknown) {
      throw new BrokerError('STORED_DATA_UNREADABLE', 'a stored credential failed its integrity check', { cause: err });
    }
  }
}
