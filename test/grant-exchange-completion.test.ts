import { Firestore } from '@google-cloud/firestore';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { FirestoreDocuments } from '../src/adapters/firestore/firestore-documents';
import { FirestoreExchangeLedger } from '../src/adapters/firestore/firestore-exchange-ledger';
import { FirestoreGrantStore } from '../src/adapters/firestore/firestore-grant-store';
import { parseKeyset } from '../src/crypto/keyset';
import { Sealer } from '../src/crypto/sealer';
import { REFRESH_TOKEN_FIELD, type GrantRecord } from '../src/domain/grant';
import { firestoreEmulator } from './support/global-fixtures';
import { ManualClock } from './support/manual-clock';

const sealer = new Sealer(parseKeyset(JSON.stringify({ primary: 'k1', keys: [{ id: 'k1', key: randomBytes(32).toString('base64') }] }), 'TEST_KEYSET'));

function grantOf(userId: string, now: number): GrantRecord {
  return {
    userId,
    profile: { userId, email: `${userId}@example.com`, emailVerified: true, name: 'A', pictureUrl: '', locale: 'en', givenName: 'A', familyName: 'B', hostedDomain: '' },
    scopes: ['openid'],
    refreshToken: sealer.seal(`1//rt-${randomBytes(6).toString('hex')}`, Sealer.context(userId, REFRESH_TOKEN_FIELD)),
    status: 'ACTIVE',
    createdAt: now,
    updatedAt: now,
  };
}

/**
 * A sign-in's grant and the exchange ledger's DONE record are one Firestore
 * commit (FirestoreGrantStore.update with a completion), against the emulator.
 */
describe('FirestoreGrantStore: the grant and its exchange record in one write', () => {
  const clock = new ManualClock();
  let db: Firestore;
  let documents: FirestoreDocuments;
  let collection: string;
  let store: FirestoreGrantStore;
  let ledger: FirestoreExchangeLedger;
  let n = 0;
  const nextIds = () => {
    n += 1;
    return { userId: `10000000000000000${1000 + n}`, codeHash: randomBytes(32).toString('hex') };
  };
  const ledgerDoc = async (codeHash: string) => (await db.collection(`${collection}_code_exchanges`).doc(codeHash).get()).data();

  before(() => {
    db = new Firestore(firestoreEmulator().clientSettings());
    documents = FirestoreDocuments.open(firestoreEmulator().clientSettings());
    collection = `grants_${randomBytes(4).toString('hex')}`;
    ledger = new FirestoreExchangeLedger(documents, `${collection}_code_exchanges`, clock, 5_000);
    store = new FirestoreGrantStore(db, documents, collection, 5_000, undefined, ledger);
  });

  after(async () => {
    await Promise.all([db.terminate(), documents.close()]);
  });

  it('writes DONE with created=true for a first sign-in, and the claim is replayed from it', async () => {
    const { userId, codeHash } = nextIds();
    expect(await ledger.claim(codeHash, clock.now() + 30_000)).to.equal(undefined);
    const until = clock.now() + 600_000;
    const result = await store.update(userId, () => grantOf(userId, clock.now()), { codeHash, until });
    expect(result.completed).to.equal(true);
    expect(result.before).to.equal(undefined);
    expect(await ledgerDoc(codeHash)).to.include({ state: 'DONE', user_id: userId, created: true });
    expect(await ledger.get(codeHash)).to.deep.equal({ state: 'DONE', userId, created: true, expiresAt: until });
  });

  it('writes created=false when a grant was stored before', async () => {
    const { userId, codeHash } = nextIds();
    await store.update(userId, () => grantOf(userId, clock.now()));
    const result = await store.update(userId, () => grantOf(userId, clock.now()), { codeHash, until: clock.now() + 600_000 });
    expect(result.completed).to.equal(true);
    expect(await ledgerDoc(codeHash)).to.include({ state: 'DONE', user_id: userId, created: false });
  });

  it('records nothing when the mutation writes nothing, and says so', async () => {
    const { userId, codeHash } = nextIds();
    const result = await store.update(userId, () => undefined, { codeHash, until: clock.now() + 600_000 });
    expect(result.completed).to.equal(false);
    expect(await ledgerDoc(codeHash)).to.equal(undefined);
  });

  it('cannot record without the ledger: completed is false and the caller records it', async () => {
    const bare = new FirestoreGrantStore(db, documents, collection, 5_000);
    const { userId, codeHash } = nextIds();
    const result = await bare.update(userId, () => grantOf(userId, clock.now()), { codeHash, until: clock.now() + 600_000 });
    expect(result.completed).to.equal(false);
    expect(await ledgerDoc(codeHash)).to.equal(undefined);
  });
});
