import { Metadata, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { uriOfSingleHop } from '../src/auth/mesh-authenticator';
import { expectGrpcError, useStack } from './support/stack';

const PHOTOS = 'spiffe://cluster.local/ns/photos/sa/photos';
const GATEWAY = 'spiffe://cluster.local/ns/gateway/sa/gateway';
const SELF = 'spiffe://cluster.local/ns/tokenbroker/sa/tokenbroker';
const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';

/** The header an Istio sidecar sets for a caller with SPIFFE ID `uri`. */
function xfcc(uri: string): string {
  return `By=${SELF};Hash=3a1c7e0d5b2f;Subject="";URI=${uri}`;
}

describe('caller identity forwarded by a mesh sidecar (x-forwarded-client-cert)', () => {
  describe('reading the header', () => {
    it('takes the URI of a single hop, quoted or not', () => {
      expect(uriOfSingleHop(xfcc(PHOTOS))).to.equal(PHOTOS);
      expect(uriOfSingleHop(`By=${SELF};Subject="CN=a,O=b;c";URI="${PHOTOS}"`)).to.equal(PHOTOS);
      expect(uriOfSingleHop(`uri=${PHOTOS}`)).to.equal(PHOTOS);
    });

    it('refuses several hops, no URI, two URIs or a URI that is not one', () => {
      expect(uriOfSingleHop(`${xfcc(GATEWAY)},${xfcc(PHOTOS)}`)).to.equal(undefined);
      expect(uriOfSingleHop(`By=${SELF};Hash=abc;DNS=photos.svc`)).to.equal(undefined);
      expect(uriOfSingleHop(`URI=${PHOTOS};URI=${GATEWAY}`)).to.equal(undefined);
      expect(uriOfSingleHop('URI=not a uri')).to.equal(undefined);
      expect(uriOfSingleHop('')).to.equal(undefined);
    });
  });

  describe('end to end', () => {
    const stack = useStack({
      mesh: true,
      policy: `
callers:
  ${PHOTOS}:
    rpcs: [GetAccessToken]
    scopes: [${DRIVE}]
  ${GATEWAY}:
    rpcs: [ExchangeCode, GetProfile]
`,
    });
    const as = (...headers: string[]) => {
      const metadata = new Metadata();
      for (const header of headers) metadata.add('x-forwarded-client-cert', header);
      return { metadata };
    };

    it('serves the identities the sidecar names, as the policy allows', async () => {
      const user = stack.newUser();
      const exchanged = await stack.client.exchangeCode({ authCode: stack.mintCode(user) }, as(xfcc(GATEWAY)));
      expect(exchanged.userId).to.equal(user.sub);
      const token = await stack.client.getAccessToken({ userId: user.sub }, as(xfcc(PHOTOS)));
      expect(token.scopes).to.deep.equal([DRIVE]);
      await expectGrpcError(stack.client.getProfile({ userId: user.sub }, as(xfcc(PHOTOS))), status.PERMISSION_DENIED, 'PERMISSION_DENIED');
    });

    it('refuses a call without the header, with two headers or with two hops', async () => {
      await expectGrpcError(stack.client.getProfile({ userId: '123' }), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
      await expectGrpcError(stack.client.getProfile({ userId: '123' }, as(xfcc(GATEWAY), xfcc(GATEWAY))), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
      await expectGrpcError(stack.client.getProfile({ userId: '123' }, as(`${xfcc(PHOTOS)},${xfcc(GATEWAY)}`)), status.UNAUTHENTICATED, 'UNAUTHENTICATED');
    });
  });
});
