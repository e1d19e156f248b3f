import { BrokerError } from '../domain/broker-error';
import type { CallerAuthenticator, CallerCredentials } from './caller-authenticator';

/**
 * Trusts the client identity a service-mesh sidecar (Envoy, as in Istio)
 * forwards after terminating mutual TLS itself: the URI (SPIFFE ID) of the
 * `x-forwarded-client-cert` header. Safe only where nothing reaches the
 * broker except through that sidecar, with mTLS required (Istio
 * PeerAuthentication STRICT) and the header replaced, not appended to, by
 * the sidecar (Istio's default); it is chosen only by configuration.
 * A header naming more than one hop or no URI is refused.
 */
export class MeshAuthenticator implements CallerAuthenticator {
  readonly method = 'mesh-xfcc';

  knownIdentity(credentials: CallerCredentials): string | undefined {
    const header = credentials.forwardedClientCert;
    return header === undefined ? undefined : uriOfSingleHop(header);
  }

  authenticate(credentials: CallerCredentials): Promise<string> {
    const header = credentials.forwardedClientCert;
    if (header === undefined) {
      return Promise.reject(new BrokerError('UNAUTHENTICATED', 'the call carried no client identity from the mesh (x-forwarded-client-cert)'));
    }
    const identity = uriOfSingleHop(header);
    if (!identity) {
      return Promise.reject(new BrokerError('UNAUTHENTICATED', 'the mesh client identity must name exactly one client with a URI'));
    }
    return Promise.resolve(identity);
  }
}

/** The URI of an XFCC header describing exactly one client, else undefined. */
export function uriOfSingleHop(header: string): string | undefined {
  const elements = splitOutsideQuotes(header, ',');
  if (elements.length !== 1) return undefined;
  const uris = splitOutsideQuotes(elements[0] as string, ';')
    .map((pair) => pair.trim())
    .filter((pair) => /^uri=/i.test(pair))
    .map((pair) => unquote(pair.slice(4)));
  return uris.length === 1 && /^[a-z][a-z0-9+.-]*:\S+$/i.test(uris[0] as string) ? uris[0] : undefined;
}

/** Splits on `separator` except inside double quotes (XFCC quotes values holding , ; or =). */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i] as string;
    if (c === '\\' && quoted && i + 1 < text.length) {
      current += c + (text[i + 1] as string);
      i += 1;
    } else if (c === '"') {
      quoted = !quoted;
      current += c;
    } else if (c === separator && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

function unquote(value: string): string {
  return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
}
