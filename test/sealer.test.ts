import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { parseKeyset } from '../src/crypto/keyset';
import { Sealer } from '../src/crypto/sealer';

const k1 = randomBytes(32).toString('base64');
const k2 = randomBytes(32).toString('base64');
const keyset = (primary: string, keys: Array<{ id: string; key: string }>) => parseKeyset(JSON.stringify({ primary, keys }), 'TEST_KEYSET');

function reasonOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err: unknown) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('Sealer', () => {
  const sealer = new Sealer(keyset('k1', [{ id: 'k1', key: k1 }]));
  const ctx = Sealer.context('123', 'refresh_token');
  const secret = '1//refresh-token-under-test';

  it('opens what it sealed, with a fresh nonce each time', () => {
    const a = sealer.seal(secret, ctx);
    const b = sealer.seal(secret, ctx);
    expect(sealer.open(a, ctx)).to.equal(secret);
    expect(a.iv.equals(b.iv)).to.equal(false);
    expect(a.ciphertext.includes(Buffer.from(secret))).to.equal(false);
  });

  it('refuses a box with one flipped byte', () => {
    const box = sealer.seal(secret, ctx);
    box.ciphertext[3] ^= 0x01;
    expect(reasonOf(() => sealer.open(box, ctx))).to.equal('STORED_DATA_UNREADABLE');
  });

  it('refuses a truncated box', () => {
    const box = sealer.seal(secret, ctx);
    expect(reasonOf(() => sealer.open({ ...box, ciphertext: box.ciphertext.subarray(0, box.ciphertext.length - 1) }, ctx))).to.equal(
      'STORED_DATA_UNREADABLE',
    );
    expect(reasonOf(() => sealer.open({ ...box, ciphertext: box.ciphertext.subarray(0, 10) }, ctx))).to.equal('STORED_DATA_UNREADABLE');
  });

  it('refuses a box moved to another user or field', () => {
    const box = sealer.seal(secret, ctx);
    expect(reasonOf(() => sealer.open(box, Sealer.context('124', 'refresh_token')))).to.equal('STORED_DATA_UNREADABLE');
    expect(reasonOf(() => sealer.open(box, Sealer.context('123', 'access_token')))).to.equal('STORED_DATA_UNREADABLE');
  });

  it('refuses a box sealed under a key it does not hold', () => {
    const other = new Sealer(keyset('k2', [{ id: 'k2', key: k2 }]));
    expect(reasonOf(() => sealer.open(other.seal(secret, ctx), ctx))).to.equal('STORED_DATA_UNREADABLE');
  });

  it('seals with the primary key and opens with any key of the keyset', () => {
    const old = new Sealer(keyset('k1', [{ id: 'k1', key: k1 }])).seal(secret, ctx);
    const rotated = new Sealer(keyset('k2', [{ id: 'k1', key: k1 }, { id: 'k2', key: k2 }]));
    expect(rotated.open(old, ctx)).to.equal(secret);
    expect(rotated.seal(secret, ctx).keyId).to.equal('k2');
  });
});

describe('parseKeyset', () => {
  const bad: Array<[string, string, RegExp]> = [
    ['not JSON', '{', /not valid JSON/],
    ['no keys', '{"primary":"a","keys":[]}', /non-empty "keys"/],
    ['short key', JSON.stringify({ primary: 'a', keys: [{ id: 'a', key: randomBytes(16).toString('base64') }] }), /exactly 32/],
    ['bad id', JSON.stringify({ primary: 'a b', keys: [{ id: 'a b', key: k1 }] }), /keys\[0\]\.id/],
    ['duplicate id', JSON.stringify({ primary: 'a', keys: [{ id: 'a', key: k1 }, { id: 'a', key: k2 }] }), /appears twice/],
    ['unknown primary', JSON.stringify({ primary: 'z', keys: [{ id: 'a', key: k1 }] }), /"primary"/],
  ];
  for (const [what, json, message] of bad) {
    it(`rejects a keyset with ${what}, naming the setting and never the key`, () => {
      expect(() => parseKeyset(json, 'TOKENBROKER_ENCRYPTION_KEYSET'))
        .to.throw(message)
        .with.property('message')
        .that.satisfies((m: string) => m.startsWith('TOKENBROKER_ENCRYPTION_KEYSET') && !m.includes(k1) && !m.includes(k2));
    });
  }
});
