/**
 * A secret sealed with AES-256-GCM, as stored. The associated data is not
 * stored: it is rebuilt from where the box lives (user and field), which is
 * what makes a box copied elsewhere fail to open.
 */
export interface SealedBox {
  /** ID of the key in the keyset that sealed it. */
  keyId: string;
  /** 12-byte random nonce. */
  iv: Buffer;
  /** Ciphertext followed by the 16-byte GCM tag. */
  ciphertext: Buffer;
}
