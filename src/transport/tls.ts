import { ServerCredentials } from '@grpc/grpc-js';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { ConfigError } from '../config/config';

/** The broker's own TLS identity and the CA bundle its callers' certificates must chain to. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer;
}

/**
 * Checks the three PEM secrets read for mutual TLS, so that a wrong one
 * stops the start naming its setting rather than failing inside the TLS
 * stack. Messages never quote the material.
 */
export function parseTlsMaterial(cert: Buffer, key: Buffer, clientCa: Buffer): TlsMaterial {
  const check = (setting: string, parse: () => unknown, what: string) => {
    try {
      parse();
    } catch {
      throw new ConfigError(`${setting} must hold ${what}`);
    }
  };
  check('TOKENBROKER_TLS_CERT', () => new X509Certificate(cert), 'the server certificate chain (PEM)');
  check('TOKENBROKER_TLS_KEY', () => createPrivateKey(key), 'the server certificate\'s private key (PEM)');
  check('TOKENBROKER_TLS_CLIENT_CA', () => new X509Certificate(clientCa), 'the CA certificate(s) client certificates are issued by (PEM)');
  return { cert, key, clientCa };
}

/** Server credentials requiring every client to present a certificate issued by the client CA. */
export function mutualTls(tls: TlsMaterial): ServerCredentials {
  return ServerCredentials.createSsl(tls.clientCa, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}
