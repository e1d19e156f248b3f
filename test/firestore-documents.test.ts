import { FieldValue, Firestore, Timestamp, type DocumentData } from '@google-cloud/firestore';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { FirestoreDocuments, isWriteConflict, type DocumentRpc, type RpcCallOptions } from '../src/adapters/firestore/firestore-documents';
import { firestoreEmulator } from './support/global-fixtures';

/** Every kind of value our documents hold, with the edge cases of each (Firestore keeps timestamps to the microsecond). */
function everyKind(): DocumentData {
  return {
    text: 'grant ✓',
    empty_text: '',
    yes: true,
    no: false,
    zero: 0,
    negative: -42,
    large: Number.MAX_SAFE_INTEGER,
    fraction: 1.5,
    unsafe: 2 ** 60,
    nothing: null,
    at: new Timestamp(1_765_000_000, 123_456_000),
    epoch: new Timestamp(0, 0),
    before_epoch: new Timestamp(-86_400, 5_000),
    bytes: randomBytes(28),
    no_bytes: Buffer.alloc(0),
    list: ['https://www.googleapis.com/auth/drive', 'openid'],
    empty_list: [],
    mixed_list: [1, 'two', { three: 3 }, null],
    map: { key_id: 'k1', iv: randomBytes(12), nested: { deeper: { at: new Timestamp(5, 6_000) } } },
    empty_map: {},
  };
}

async function rejection(promise: Promise<unknown>): Promise<Error & { code?: unknown }> {
  try {
    await promise;
  } catch (err: unknown) {
    return err as Error & { code?: unknown };
  }
  throw new Error('expected a rejection');
}

describe('FirestoreDocuments: single documents over GetDocument and Commit', () => {
  let db: Firestore;
  let documents: FirestoreDocuments;
  let collection: string;
  let n = 0;
  const nextId = () => {
    n += 1;
    return `doc${n}`;
  };

  before(() => {
    db = new Firestore(firestoreEmulator().clientSettings());
    documents = FirestoreDocuments.open(firestoreEmulator().clientSettings());
    collection = `documents_${randomBytes(4).toString('hex')}`;
  });

  after(async () => {
    await Promise.all([db.terminate(), documents.close()]);
  });

  it('writes documents the high-level client reads back value for value, types included', async () => {
    const id = nextId();
    const data = everyKind();
    await documents.commit([{ name: documents.name(collection, id), data }], 5_000);
    const read = (await db.collection(collection).doc(id).get()).data();
    expect(read).to.deep.equal(data);
    expect(read?.at).to.be.instanceOf(Timestamp);
    expect(Buffer.isBuffer(read?.bytes)).to.equal(true);
  });

  it('reads documents the high-level client wrote exactly as that client reads them', async () => {
    const id = nextId();
    await db.collection(collection).doc(id).set(everyKind());
    const ours = await documents.get(documents.name(collection, id), 5_000);
    const theirs = (await db.collection(collection).doc(id).get()).data();
    expect(ours?.data).to.deep.equal(theirs);
    expect(ours?.data.map.nested.deeper.at).to.be.instanceOf(Timestamp);
    expect(Buffer.isBuffer(ours?.data.map.iv)).to.equal(true);
  });

  it('reads a missing document as undefined, and deletes one whether it exists or not', async () => {
    const name = documents.name(collection, nextId());
    expect(await documents.get(name, 5_000)).to.equal(undefined);
    await documents.delete(name, 5_000);
    await documents.commit([{ name, data: { a: 1 } }], 5_000);
    await documents.delete(name, 5_000);
    expect(await documents.get(name, 5_000)).to.equal(undefined);
  });

  it('replaces the whole document: fields the write does not name are gone', async () => {
    const id = nextId();
    await db.collection(collection).doc(id).set({ kept: 'old', dropped: 'old', map: { a: 1, b: 2 } });
    await documents.commit([{ name: documents.name(collection, id), data: { kept: 'new', map: { a: 3 } } }], 5_000);
    expect((await db.collection(collection).doc(id).get()).data()).to.deep.equal({ kept: 'new', map: { a: 3 } });
  });

  it("'absent' writes only a new document: ALREADY_EXISTS, a write conflict, when one exists", async () => {
    const name = documents.name(collection, nextId());
    await documents.commit([{ name, data: { v: 1 } }], 5_000);
    const err = await rejection(documents.commit([{ name, data: { v: 2 }, precondition: 'absent' }], 5_000));
    expect(err.code).to.equal(6);
    expect(isWriteConflict(err)).to.equal(true);
    expect((await documents.get(name, 5_000))?.data).to.deep.equal({ v: 1 });
  });

  it('an update time writes only over the document as read: FAILED_PRECONDITION once it changed', async () => {
    const id = nextId();
    const name = documents.name(collection, id);
    await documents.commit([{ name, data: { v: 1 } }], 5_000);
    const read = await documents.get(name, 5_000);
    if (!read) throw new Error('the document was just written');
    // The update time is the document's own: the high-level client's read agrees.
    const snapshot = await db.collection(collection).doc(id).get();
    expect(Timestamp.fromMillis(0).isEqual(snapshot.updateTime as Timestamp)).to.equal(false);
    expect(read.updateTime).to.deep.equal({ seconds: String(snapshot.updateTime?.seconds), nanos: snapshot.updateTime?.nanoseconds });

    await db.collection(collection).doc(id).update({ v: 2 });
    const err = await rejection(documents.commit([{ name, data: { v: 3 }, precondition: read.updateTime }], 5_000));
    expect(err.code).to.equal(9);
    expect(isWriteConflict(err)).to.equal(true);
    const fresh = await documents.get(name, 5_000);
    expect(fresh?.data).to.deep.equal({ v: 2 });
    await documents.commit([{ name, data: { v: 3 }, precondition: fresh?.updateTime }], 5_000);
    expect((await documents.get(name, 5_000))?.data).to.deep.equal({ v: 3 });
  });

  it('commits all writes or none: one failed precondition leaves the other document unwritten', async () => {
    const first = documents.name(collection, nextId());
    const second = documents.name(collection, nextId());
    await documents.commit([{ name: second, data: { v: 'there' } }], 5_000);
    const err = await rejection(
      documents.commit(
        [
          { name: first, data: { v: 'new' } },
          { name: second, data: { v: 'clobbered' }, precondition: 'absent' },
        ],
        5_000,
      ),
    );
    expect(isWriteConflict(err)).to.equal(true);
    expect(await documents.get(first, 5_000)).to.equal(undefined);
    expect((await documents.get(second, 5_000))?.data).to.deep.equal({ v: 'there' });
  });

  it('refuses a value it cannot store, naming the field and not the value', async () => {
    const secret = 'ya29.secret-access-token';
    for (const [data, field] of [
      [{ token: { nested: undefined } }, 'token.nested'],
      [{ list: [secret, () => secret] }, 'list[1]'],
      [{ when: new Date() }, 'when'],
      [{ gone: FieldValue.delete() }, 'gone'],
    ] as const) {
      const err = await rejection(documents.commit([{ name: documents.name(collection, 'never'), data: { secret, ...data } }], 5_000));
      expect(err, field).to.be.instanceOf(TypeError);
      expect(err.message).to.contain(field);
      expect(err.message).not.to.contain(secret);
    }
    expect(await documents.get(documents.name(collection, 'never'), 5_000)).to.equal(undefined);
  });

  it('refuses a document ID that is empty or holds a slash', () => {
    expect(() => documents.name(collection, '')).to.throw(TypeError);
    expect(() => documents.name(collection, 'a/b')).to.throw(TypeError);
  });
});

describe('FirestoreDocuments: what each call sends', () => {
  /** Records each call's options and, as the generated client does, adds a routing header to the object it is given. */
  function recordingRpc() {
    const calls: Array<{ method: string; request: unknown; options: RpcCallOptions; headers: Record<string, string> }> = [];
    const rpc: DocumentRpc = {
      batchGetDocuments(request, options) {
        calls.push({ method: 'batchGetDocuments', request, options, headers: { ...options.otherArgs.headers } });
        options.otherArgs.headers['x-goog-request-params'] = `database=${request.database}`;
        // As the generated client decodes messages: every member present, the set one named.
        const name = request.documents[0] ?? '';
        return Readable.from(
          name.endsWith('/missing')
            ? [{ found: null, missing: name, result: 'missing' }]
            : [{ found: { name, fields: { v: { valueType: 'integerValue', integerValue: '7', stringValue: '' } }, updateTime: { seconds: '12', nanos: 3 } }, missing: '', result: 'found' }],
        );
      },
      async commit(request, options) {
        calls.push({ method: 'commit', request, options, headers: { ...options.otherArgs.headers } });
        options.otherArgs.headers['x-goog-request-params'] = `database=${request.database}`;
        return {};
      },
      async close() {},
    };
    return { rpc, calls };
  }

  it("sends the database's resource header and the configured headers, fresh to every call", async () => {
    const { rpc, calls } = recordingRpc();
    const documents = new FirestoreDocuments(rpc, 'proj', '(default)', { Authorization: 'Bearer owner' });
    const name = documents.name('grants', '123');
    expect(name).to.equal('projects/proj/databases/(default)/documents/grants/123');
    await Promise.all([documents.get(name, 1_000), documents.commit([{ name, data: { v: 1 } }], 1_000), documents.get(name, 1_000)]);
    for (const call of calls) {
      expect(call.headers, call.method).to.deep.equal({ 'google-cloud-resource-prefix': 'projects/proj/databases/(default)', Authorization: 'Bearer owner' });
    }
    expect(new Set(calls.map((c) => c.options.otherArgs.headers)).size).to.equal(calls.length);
  });

  it('gives each RPC the deadline it is given, and decodes what the generated client returns', async () => {
    const { rpc, calls } = recordingRpc();
    const documents = new FirestoreDocuments(rpc, 'proj', 'db2');
    const read = await documents.get(documents.name('grants', '1'), 1_234);
    expect(read).to.deep.equal({ data: { v: 7 }, updateTime: { seconds: '12', nanos: 3 } });
    expect(calls[0]?.request).to.deep.equal({ database: 'projects/proj/databases/db2', documents: ['projects/proj/databases/db2/documents/grants/1'] });
    expect(await documents.get(documents.name('grants', 'missing'), 1_000)).to.equal(undefined);
    calls.pop();
    await documents.commit([{ name: documents.name('grants', '1'), data: { v: 8 }, precondition: read?.updateTime }], 987);
    expect(calls.map((c) => c.options.timeout)).to.deep.equal([1_234, 987]);
    expect(calls[1]?.request).to.deep.equal({
      database: 'projects/proj/databases/db2',
      writes: [{ update: { name: 'projects/proj/databases/db2/documents/grants/1', fields: { v: { integerValue: 8 } } }, currentDocument: { updateTime: { seconds: '12', nanos: 3 } } }],
    });
  });
  /** A generated client whose reads fail with `codes`, one per attempt, then find the document. */
  function failingReads(codes: number[]) {
    let attempts = 0;
    const rpc: DocumentRpc = {
      batchGetDocuments(request) {
        const code = codes[attempts];
        attempts += 1;
        if (code !== undefined) {
          const stream = new Readable({ objectMode: true, read() {} });
          process.nextTick(() => stream.destroy(Object.assign(new Error(`status ${code}`), { code })));
          return stream;
        }
        return Readable.from([{ found: { name: request.documents[0], fields: {}, updateTime: { seconds: '1', nanos: 0 } }, result: 'found' }]);
      },
      commit: async () => ({}),
      close: async () => {},
    };
    return { rpc, attempts: () => attempts };
  }

  it('reads again after a transient failure, within the deadline', async () => {
    const reads = failingReads([14, 13]);
    const documents = new FirestoreDocuments(reads.rpc, 'proj', '(default)');
    const read = await documents.get(documents.name('grants', '1'), 5_000);
    expect(read?.data).to.deep.equal({});
    expect(reads.attempts()).to.equal(3);
  });

  it('does not read again after a failure that is not transient, nor past the deadline', async () => {
    const denied = failingReads([7]);
    const documents = new FirestoreDocuments(denied.rpc, 'proj', '(default)');
    expect((await rejection(documents.get(documents.name('grants', '1'), 5_000))).code).to.equal(7);
    expect(denied.attempts()).to.equal(1);

    const down = failingReads(Array.from({ length: 100 }, () => 14));
    const outage = new FirestoreDocuments(down.rpc, 'proj', '(default)');
    const started = performance.now();
    expect((await rejection(outage.get(outage.name('grants', '1'), 300))).code).to.equal(14);
    // It gives up instead of waiting out its 100 attempts (the bound leaves room for a busy machine's timers).
    expect(performance.now() - started).to.be.below(2_000);
    // Waits of 100, 130 and 169 ms, each with up to half taken off, leave room in 300 ms for 3 or 4 attempts (fewer if timers run late).
    expect(down.attempts()).to.be.within(2, 4);
  });
});
