/**
 * Reads one secret's bytes by reference. References are either a Secret
 * Manager version name (`projects/P/secrets/S/versions/V`) or, for local
 * development, `file:PATH`.
 */
export interface SecretSource {
  read(ref: string): Promise<Buffer>;
}

/** A Secret Manager secret version resource name. */
export const SECRET_VERSION_NAME = /^projects\/[^/]+\/secrets\/[^/]+\/versions\/[^/]+$/;

/** True when `ref` is a reference {@link SecretSource} implementations accept. */
export function isSecretRef(ref: string): boolean {
  return SECRET_VERSION_NAME.test(ref) || (ref.startsWith('file:') && ref.length > 'file:'.length);
}
