import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import fc from 'fast-check';
import { errorInfoOf, isServiceError } from '../src/client/error-info';
import { checkHealth } from '../src/client/health-client';
import {
  GetGrantStatusRequest,
  GoogleRevocation,
  GrantState,
  RevokeUserRequest,
  TokenBrokerServiceService,
  type GetGrantStatusResponse,
  type RevokeUserResponse,
} from '../src/gen/tokenbroker/v1/token_broker';
import { issuedSecrets, leakedSecrets } from './support/log-capture';
import { RawGrpcClient } from './support/raw-grpc-client';
import { anyString, concatBytes, digits, hugeString, INVALID_UTF8, MAX_REQUEST_BYTES, nastyChar, USER_ID, utf8 } from './support/input-arbitraries';
import { useStack } from './support/stack';

// The contract of RevokeUser and GetGrantStatus, as the README states it.

type Rpc = 'RevokeUser' | 'GetGrantStatus';
const RPCS: readonly Rpc[] = ['RevokeUser', 'GetGrantStatus'];
const METHODS = {
  RevokeUser: TokenBrokerServiceService.revokeUser,
  GetGrantStatus: TokenBrokerServiceService.getGrantStatus,
} as const;

/**
 * What a call ended with, in comparable form: the gRPC code, the ErrorInfo
 * reason and `field`, and for a success the facts the contract fixes.
 */
interface Outcome {
  code: string;
  reason?: string;
  field?: string;
  /** RevokeUser success. */
  wasStored?: boolean;
  google?: string;
  /** GetGrantStatus success. */
  state?: string;
  scopes?: string[];
}

function outcome(code: status, extra: Omit<Outcome, 'code'> = {}): Outcome {
  return { code: status[code], reason: undefined, field: undefined, wasStored: undefined, google: undefined, state: undefined, scopes: undefined, ...extra };
}

function revokeOutcome(r: RevokeUserResponse): Outcome {
  return outcome(status.OK, { wasStored: r.wasStored, google: GoogleRevocation[r.googleRevocation] });
}

function statusOutcome(r: GetGrantStatusResponse): Outcome {
  return outcome(status.OK, { state: GrantState[r.state], scopes: [...r.scopes].sort() });
}

/**
 * The users the properties know about: one whose grant they only read
 * (never revoked), and a pool they may revoke, tracked as the service
 * should: revoked once, gone for good.
 */
interface World {
  readUserId: string;
  readUserScopes: string[];
  pool: string[];
  stored: Set<string>;
}

/** The one answer the contract allows for `userId` (as the server decoded it) sent as `size` bytes. */
function expected(rpc: Rpc, userId: string, size: number, world: World): Outcome {
  if (size > MAX_REQUEST_BYTES) return outcome(status.RESOURCE_EXHAUSTED);
  if (!USER_ID.test(userId)) return outcome(status.INVALID_ARGUMENT, { reason: 'INVALID_REQUEST', field: 'user_id' });
  const stored = userId === world.readUserId || world.stored.has(userId);
  if (rpc === 'RevokeUser') {
    // Idempotent: an unknown or already revoked user is revoked successfully, with nothing to tell Google.
    return outcome(status.OK, { wasStored: stored, google: stored ? 'GOOGLE_REVOCATION_DONE' : 'GOOGLE_REVOCATION_NOT_NEEDED' });
  }
  if (!stored) return outcome(status.NOT_FOUND, { reason: 'USER_NOT_FOUND' });
  return outcome(status.OK, { state: 'GRANT_STATE_ACTIVE', scopes: world.readUserScopes });
}

// ---------------------------------------------------------------------------
// Arbitraries


/** `id` with a character or two of noise around it: never a valid ID. */
function decorated(id: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc
    .tuple(fc.string({ unit: nastyChar, minLength: 1, maxLength: 2 }), id, fc.string({ unit: nastyChar, maxLength: 2 }), fc.boolean())
    .map(([noise, bare, more, before]) => (before ? `${noise}${bare}${more}` : `${bare}${more}${noise}`));
}

/**
 * User IDs for `rpc`: garbage, well-formed unknown ones, too long ones, the
 * pool (stored or already revoked), decorated known IDs, and for
 * GetGrantStatus the read-only user (RevokeUser never gets it bare).
 */
function userIds(rpc: Rpc, world: World): fc.Arbitrary<string> {
  const pool = fc.constantFrom(...world.pool);
  const known = fc.constantFrom(world.readUserId, ...world.pool);
  return fc.oneof(
    { weight: 4, arbitrary: anyString() },
    { weight: 3, arbitrary: digits(1, 255) },
    { weight: 1, arbitrary: digits(256, 300) },
    { weight: 3, arbitrary: rpc === 'GetGrantStatus' ? known : pool },
    { weight: 2, arbitrary: decorated(known) },
    { weight: 1, arbitrary: fc.constantFrom('0', '00', '-1', '+1', '1e5', '0x1f', ' 1', '1 ', '1\n', '1\u0000', '../1', '1/2', '%31', '１２３', '١٢٣') },
  );
}



/** A user_id field whose bytes hold at least one invalid UTF-8 sequence between digits or known IDs. */
function invalidUtf8Requests(world: World): fc.Arbitrary<Uint8Array> {
  const clean = fc.oneof(digits(1, 30), fc.constantFrom(world.readUserId, ...world.pool)).map(utf8);
  const bad = fc.constantFrom(...INVALID_UTF8).map((b) => Uint8Array.from(b));
  return fc
    .tuple(fc.array(clean, { maxLength: 2 }), bad, fc.array(fc.oneof(clean, bad), { maxLength: 2 }))
    .map(([before, invalid, after]) => new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(concatBytes([...before, invalid, ...after])).finish());
}

/** One field on the wire, of a wire type a decoder can skip. */
type WireField = { kind: 'varint'; no: number; value: bigint } | { kind: 'fixed64' | 'fixed32' | 'len'; no: number; bytes: Uint8Array };

/** Field numbers: mostly user_id (1) and its neighbours, also huge ones. */
const fieldNo = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 3 }) }, { weight: 1, arbitrary: fc.integer({ min: 4, max: 2 ** 29 - 1 }) });
const wireField: fc.Arbitrary<WireField> = fc.oneof(
  fc.record({ kind: fc.constant('varint' as const), no: fieldNo, value: fc.bigInt(0n, 2n ** 64n - 1n) }),
  fc.record({ kind: fc.constant('fixed64' as const), no: fieldNo, bytes: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('fixed32' as const), no: fieldNo, bytes: fc.uint8Array({ minLength: 4, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('len' as const), no: fieldNo, bytes: fc.uint8Array({ maxLength: 24 }) }),
);

function writeFields(fields: readonly WireField[]): Uint8Array {
  const w = new BinaryWriter();
  for (const f of fields) {
    if (f.kind === 'varint') w.tag(f.no, WireType.Varint).uint64(f.value);
    else if (f.kind === 'fixed64') w.tag(f.no, WireType.Bit64).raw(f.bytes);
    else if (f.kind === 'fixed32') w.tag(f.no, WireType.Bit32).raw(f.bytes);
    else w.tag(f.no, WireType.LengthDelimited).bytes(f.bytes);
  }
  return w.finish();
}

/** A valid request naming one of `userIds`, encoded (both messages have the same shape). */
function validRequest(rpc: Rpc, world: World): fc.Arbitrary<Uint8Array> {
  return userIds(rpc, world).map((userId) => RevokeUserRequest.encode({ userId }).finish());
}

/** Valid requests merged with user_id under wrong wire types and unknown fields (concatenated encodings are one message). */
function oddFieldRequests(rpc: Rpc, world: World): fc.Arbitrary<Uint8Array> {
  const part = fc.oneof(validRequest(rpc, world), fc.array(wireField, { minLength: 1, maxLength: 4 }).map(writeFields));
  return fc.array(part, { minLength: 1, maxLength: 4 }).map(concatBytes);
}

/** Uniform noise, and valid requests with a few bytes changed, inserted, removed or cut off. */
function arbitraryBytes(rpc: Rpc, world: World): fc.Arbitrary<Uint8Array> {
  const edit = fc.record({ at: fc.nat(), op: fc.constantFrom('set', 'insert', 'delete', 'truncate'), byte: fc.integer({ min: 0, max: 255 }) });
  return fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    fc.tuple(validRequest(rpc, world), fc.array(edit, { minLength: 1, maxLength: 3 })).map(([bytes, edits]) => {
      const out = [...bytes];
      for (const { at, op, byte } of edits) {
        const i = out.length === 0 ? 0 : at % (out.length + (op === 'insert' ? 1 : 0));
        if (op === 'set' && out.length > 0) out[i] = byte;
        else if (op === 'insert') out.splice(i, 0, byte);
        else if (op === 'delete') out.splice(i, 1);
        else if (op === 'truncate') out.length = i;
      }
      return Uint8Array.from(out);
    }),
  );
}

/** The user_id the server's own decoder reads from `bytes`; undefined when it refuses them. */
function serverView(rpc: Rpc, bytes: Uint8Array): string | undefined {
  try {
    return METHODS[rpc].requestDeserialize(Buffer.from(bytes)).userId;
  } catch {
    return undefined;
  }
}

/** A request exactly `size` bytes long: `userId` followed by an unknown field padding it out. */
function paddedRequest(userId: string, size: number): Uint8Array {
  const head = GetGrantStatusRequest.encode({ userId }).finish();
  for (let pad = size - head.length - 4; pad >= 0; pad -= 1) {
    const bytes = concatBytes([head, new BinaryWriter().tag(15, WireType.LengthDelimited).bytes(new Uint8Array(pad)).finish()]);
    if (bytes.length === size) return bytes;
  }
  throw new Error(`cannot pad a request to ${size} bytes`);
}

// ---------------------------------------------------------------------------

describe('lifecycle properties: RevokeUser and GetGrantStatus under arbitrary input', () => {
  const stack = useStack();
  const world: World = { readUserId: '', readUserScopes: [], pool: [], stored: new Set() };
  /** Every user ID RevokeUser revoked, and every one it refused as malformed. */
  const revokedIds = new Set<string>();
  const refusedIds = new Set<string>();
  let googleRevokes = 0;
  let readUserDocument: Record<string, unknown> | undefined;
  let raw: RawGrpcClient;
  let address: string;
  let logStart: number;

  before(async () => {
    const reader = await stack.signIn(stack.newUser());
    world.readUserId = reader.userId;
    world.readUserScopes = [...reader.grantedScopes].sort();
    for (let i = 0; i < 6; i += 1) world.pool.push((await stack.signIn(stack.newUser())).userId);
    for (const id of world.pool) world.stored.add(id);
    readUserDocument = await stack.rawDocument(world.readUserId);
    address = `127.0.0.1:${stack.app.port}`;
    raw = new RawGrpcClient(address);
    logStart = stack.logs.length;
  });
  after(() => {
    raw?.close();
  });

  /** Asserts nothing the local Google issued, nor any configured secret, is in `text`. */
  function expectNoSecrets(text: string, what: string): void {
    for (const secret of stack.google.issuedSecrets()) issuedSecrets.add(secret);
    expect(leakedSecrets(text), `credential in ${what}`).to.deep.equal([]);
  }

  /**
   * Checks `observed` against the one allowed answer, keeps the model of
   * stored users in step, and checks what Google was told.
   */
  function settle(rpc: Rpc, userId: string, size: number, observed: Outcome, details: string, revokesBefore: number): void {
    const want = expected(rpc, userId, size, world);
    expect(observed.code, `answered ${observed.code}: ${details}`).not.to.be.oneOf(['INTERNAL', 'UNKNOWN']);
    expect(observed, `${rpc} ${JSON.stringify(userId.slice(0, 80))} (${size} bytes): ${details}`).to.deep.equal(want);
    const revokes = stack.google.stats().revoke - revokesBefore;
    if (rpc === 'RevokeUser' && want.code === 'OK') {
      revokedIds.add(userId);
      // Google is told once, for a stored grant only.
      expect(revokes, 'revocations sent to Google').to.equal(want.wasStored ? 1 : 0);
      world.stored.delete(userId);
    } else {
      if (rpc === 'RevokeUser' && want.reason === 'INVALID_REQUEST') refusedIds.add(userId);
      expect(revokes, 'revocations sent to Google').to.equal(0);
    }
    googleRevokes += revokes;
  }

  async function callTyped(rpc: Rpc, userId: string): Promise<void> {
    const bytes = RevokeUserRequest.encode({ userId }).finish();
    const decoded = serverView(rpc, bytes) as string;
    const revokesBefore = stack.google.stats().revoke;
    let observed: Outcome;
    let details = 'OK';
    try {
      const options = { timeoutMs: 15_000 };
      if (rpc === 'RevokeUser') observed = revokeOutcome(await stack.client.revokeUser({ userId }, options));
      else {
        const response = await stack.client.getGrantStatus({ userId }, options);
        expectNoSecrets(JSON.stringify(response), 'a GetGrantStatus response');
        observed = statusOutcome(response);
      }
    } catch (err: unknown) {
      if (!isServiceError(err)) throw err;
      const info = errorInfoOf(err);
      details = err.details;
      expectNoSecrets(`${err.details} ${JSON.stringify(info?.metadata ?? {})}`, 'an error');
      observed = outcome(err.code, { reason: info?.reason, field: info?.metadata['field'] });
    }
    settle(rpc, decoded, bytes.length, observed, details, revokesBefore);
  }

  async function callRaw(rpc: Rpc, bytes: Uint8Array): Promise<void> {
    const decoded = serverView(rpc, bytes);
    const revokesBefore = stack.google.stats().revoke;
    const result = await raw.unary(METHODS[rpc].path, bytes, 15_000);
    if (decoded === undefined) {
      // grpc-js alone would answer INTERNAL; the server's tolerant decoders refuse the bytes instead.
      expect(status[result.code], result.details).to.equal('INVALID_ARGUMENT');
      expect(stack.google.stats().revoke - revokesBefore, 'revocations sent to Google').to.equal(0);
      return;
    }
    let observed: Outcome;
    if (result.code === status.OK) {
      const response = result.response ?? Buffer.alloc(0);
      expectNoSecrets(response.toString('latin1'), `a ${rpc} response`);
      observed = rpc === 'RevokeUser' ? revokeOutcome(METHODS.RevokeUser.responseDeserialize(response)) : statusOutcome(METHODS.GetGrantStatus.responseDeserialize(response));
    } else {
      expectNoSecrets(`${result.details} ${JSON.stringify(result.metadata ?? {})}`, 'an error');
      observed = outcome(result.code, { reason: result.reason, field: result.metadata?.['field'] });
    }
    settle(rpc, decoded, bytes.length, observed, result.details, revokesBefore);
  }

  describe('typed requests', () => {
    it('GetGrantStatus: arbitrary user_id gets INVALID_REQUEST, USER_NOT_FOUND or the stored grant, never a token', async () => {
      await fc.assert(fc.asyncProperty(userIds('GetGrantStatus', world), (id) => callTyped('GetGrantStatus', id)), { numRuns: 80 });
    });

    it('RevokeUser: arbitrary user_id gets INVALID_REQUEST or OK (idempotent), Google told once per stored grant, and the user is gone', async () => {
      await fc.assert(
        fc.asyncProperty(userIds('RevokeUser', world), async (id) => {
          await callTyped('RevokeUser', id);
          // A revoked (or never stored) user has no status left; a refused request changed nothing.
          if (USER_ID.test(id)) await callTyped('GetGrantStatus', id);
        }),
        { numRuns: 80 },
      );
      expect(world.stored.size, 'some pool users were revoked by the property').to.be.lessThan(world.pool.length);
    });

    it('huge user_id values up to beyond the 64 KiB limit: refused by size or as INVALID_REQUEST', async () => {
      const rpc = fc.constantFrom(...RPCS);
      await fc.assert(fc.asyncProperty(rpc, fc.oneof(hugeString, digits(256, 4000)), (r, id) => callTyped(r, id)), { numRuns: 16 });
    });
  });

  describe('raw bytes on the wire', () => {
    const rpc = fc.constantFrom(...RPCS);
    /** Pairs an RPC with requests for it; a byte edit could turn a decorated ID into the read-only user's, which RevokeUser must not get. */
    const requests = (of: (r: Rpc) => fc.Arbitrary<Uint8Array>) =>
      rpc.chain((r) => fc.tuple(fc.constant(r), of(r).filter((bytes) => r !== 'RevokeUser' || serverView(r, bytes) !== world.readUserId)));

    it('user_id holding invalid UTF-8 is read with replacement characters and refused as INVALID_REQUEST', async () => {
      await fc.assert(fc.asyncProperty(requests(() => invalidUtf8Requests(world)), ([r, bytes]) => callRaw(r, bytes)), { numRuns: 40 });
    });

    it('user_id under wrong wire types and unknown fields: skipped, the contract answer for what decodes', async () => {
      await fc.assert(fc.asyncProperty(requests((r) => oddFieldRequests(r, world)), ([r, bytes]) => callRaw(r, bytes)), { numRuns: 60 });
    });

    it('arbitrary bytes: the contract answer when they decode, INVALID_ARGUMENT when they do not', async () => {
      await fc.assert(fc.asyncProperty(requests((r) => arbitraryBytes(r, world)), ([r, bytes]) => callRaw(r, bytes)), { numRuns: 100 });
    });

    it('requests of exactly 64 KiB are read, one byte more is RESOURCE_EXHAUSTED', async () => {
      for (const r of RPCS) {
        // RevokeUser names a well-formed unknown user, so the read-only user stays.
        const userId = r === 'RevokeUser' ? '9'.repeat(30) : world.readUserId;
        for (const size of [MAX_REQUEST_BYTES - 1, MAX_REQUEST_BYTES, MAX_REQUEST_BYTES + 1]) {
          const bytes = paddedRequest(userId, size);
          expect(bytes.length).to.equal(size);
          await callRaw(r, bytes);
        }
      }
    });
  });

  // Mocha runs a suite's own tests before its child suites: this one needs a suite of its own to run last.
  describe('afterwards', () => {
    it('still serves, kept the read-only grant as it was, deleted exactly the revoked pool users, and logged no error or secret', async () => {
      expect(await checkHealth(address)).to.equal('SERVING');
      expect(await checkHealth(address, 'tokenbroker.v1.TokenBrokerService')).to.equal('SERVING');
      expect(await stack.rawDocument(world.readUserId), 'the read-only grant').to.deep.equal(readUserDocument);
      const token = await stack.client.getAccessToken({ userId: world.readUserId });
      expect(token.accessToken).to.match(/^ya29\./);

      const stored = (await stack.db.collection(stack.collection).get()).docs.map((d) => d.id).sort();
      expect(stored, 'grants left').to.deep.equal([world.readUserId, ...world.stored].sort());
      const revokedPool = world.pool.filter((id) => !world.stored.has(id));
      expect(googleRevokes, 'revocations Google received').to.equal(revokedPool.length);
      // The ledger names the valid IDs revoked, nothing refused, and holds no revocation left for Google.
      const ledger = (await stack.db.collection(`${stack.collection}_revocations`).get()).docs;
      for (const doc of ledger) {
        expect(revokedIds.has(doc.id), `ledger entry ${doc.id}`).to.equal(true);
        expect(doc.data(), `ledger entry ${doc.id}`).not.to.have.property('pending');
      }
      for (const id of revokedPool) expect(ledger.map((d) => d.id)).to.include(id);
      for (const id of refusedIds) expect(ledger.map((d) => d.id)).not.to.include(id);

      const logged = stack.logs.slice(logStart);
      expectNoSecrets(logged.join('\n'), 'a log line');
      const parsed = logged.map((line) => JSON.parse(line) as { severity?: string; code?: string });
      const bad = parsed.filter((l) => l.severity === 'ERROR' || l.severity === 'CRITICAL' || l.code === 'INTERNAL' || l.code === 'UNKNOWN');
      expect(bad, 'error log lines').to.deep.equal([]);
    });
  });
});
