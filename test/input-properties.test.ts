import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { Firestore } from '@google-cloud/firestore';
import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import fc from 'fast-check';
import { errorInfoOf, isServiceError } from '../src/client/error-info';
import { checkHealth } from '../src/client/health-client';
import { Duration } from '../src/gen/google/protobuf/duration';
import {
  ExchangeCodeRequest,
  GetAccessTokenRequest,
  GetProfileRequest,
  TokenBrokerServiceService,
  type GetAccessTokenResponse,
  type GetProfileResponse,
} from '../src/gen/tokenbroker/v1/token_broker';
import { RawGrpcClient, type RawCallResult } from './support/raw-grpc-client';
import { anyString, concatBytes, digits, hugeString, INVALID_UTF8, MAX_REQUEST_BYTES, nastyChar, USER_ID, utf8 } from './support/input-arbitraries';
import { SIGN_IN_SCOPES, useStack } from './support/stack';

// The request contract, as the README and the INVALID_REQUEST messages state it.
/** auth_code: 1 to 2048 characters; redirect_uri: at most 2048. */
const MAX_AUTH_CODE_CHARS = 2048;
const MAX_REDIRECT_URI_CHARS = 2048;
/** scopes: at most 50 entries, each 1 to 512 printable characters without spaces. */
const MAX_SCOPES = 50;
const SCOPE = /^[\x21-\x7e]{1,512}$/;
/** google.protobuf.Duration's valid range. */
const MAX_DURATION_SECONDS = 315_576_000_000n;
const MAX_DURATION_NANOS = 999_999_999;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** One request to one RPC, as a typed message. */
type Call =
  | { rpc: 'ExchangeCode'; request: ExchangeCodeRequest }
  | { rpc: 'GetAccessToken'; request: GetAccessTokenRequest }
  | { rpc: 'GetProfile'; request: GetProfileRequest };
type Rpc = Call['rpc'];
const RPCS: readonly Rpc[] = ['ExchangeCode', 'GetAccessToken', 'GetProfile'];

const METHODS = {
  ExchangeCode: TokenBrokerServiceService.exchangeCode,
  GetAccessToken: TokenBrokerServiceService.getAccessToken,
  GetProfile: TokenBrokerServiceService.getProfile,
} as const;

/** The user the stack signed in before the properties run: the valid-user paths. */
interface KnownUser {
  userId: string;
  grantedScopes: string[];
}

/**
 * What a call ended with, in comparable form: the gRPC code, the ErrorInfo
 * reason and `field`, and for a success the facts checked of the response.
 */
interface Outcome {
  code: string;
  reason?: string;
  field?: string;
  /** GetAccessToken success: the token's scopes (sorted, unique) and whether a token came back. */
  scopes?: string[];
  hasToken?: boolean;
  /** GetProfile success: the profile's user ID. */
  profileUserId?: string;
}

function outcome(code: status, extra: Omit<Outcome, 'code'> = {}): Outcome {
  return { code: status[code], reason: undefined, field: undefined, scopes: undefined, hasToken: undefined, profileUserId: undefined, ...extra };
}

function invalid(field: string): Outcome {
  return outcome(status.INVALID_ARGUMENT, { reason: 'INVALID_REQUEST', field });
}

function sortedUnique(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}

function encodeCall(call: Call): Uint8Array {
  switch (call.rpc) {
    case 'ExchangeCode':
      return ExchangeCodeRequest.encode(call.request).finish();
    case 'GetAccessToken':
      return GetAccessTokenRequest.encode(call.request).finish();
    case 'GetProfile':
      return GetProfileRequest.encode(call.request).finish();
  }
}

/** The request as the server's own deserializer reads `bytes`; undefined when it refuses them. */
function serverView(rpc: Rpc, bytes: Uint8Array): Call | undefined {
  const buffer = Buffer.from(bytes);
  try {
    switch (rpc) {
      case 'ExchangeCode':
        return { rpc, request: METHODS.ExchangeCode.requestDeserialize(buffer) };
      case 'GetAccessToken':
        return { rpc, request: METHODS.GetAccessToken.requestDeserialize(buffer) };
      case 'GetProfile':
        return { rpc, request: METHODS.GetProfile.requestDeserialize(buffer) };
    }
  } catch {
    return undefined;
  }
}

/** min_ttl in nanoseconds, exactly. */
function durationNanos(d: Duration): bigint {
  return BigInt(d.seconds) * 1_000_000_000n + BigInt(d.nanos);
}

/** True when `d` is a Duration the protobuf spec allows (range, nanos range, one sign). */
function isSpecDuration(d: Duration): boolean {
  const seconds = BigInt(d.seconds);
  if (seconds > MAX_DURATION_SECONDS || seconds < -MAX_DURATION_SECONDS) return false;
  if (Math.abs(d.nanos) > MAX_DURATION_NANOS) return false;
  return !((seconds > 0n && d.nanos < 0) || (seconds < 0n && d.nanos > 0));
}

/**
 * Every answer the contract allows for `call` (as the server decoded it)
 * sent as `size` bytes. A request with several malformed fields may be
 * refused naming any of them. A Duration outside the protobuf spec but
 * not negative may be refused or served.
 */
function allowedOutcomes(call: Call, size: number, known: KnownUser): Outcome[] {
  if (size > MAX_REQUEST_BYTES) return [outcome(status.RESOURCE_EXHAUSTED)];
  switch (call.rpc) {
    case 'ExchangeCode': {
      const { authCode, redirectUri } = call.request;
      const malformed: string[] = [];
      if (authCode.length === 0 || authCode.length > MAX_AUTH_CODE_CHARS) malformed.push('auth_code');
      if (redirectUri.length > MAX_REDIRECT_URI_CHARS) malformed.push('redirect_uri');
      if (malformed.length > 0) return malformed.map(invalid);
      // No random code is one the local Google issued.
      return [outcome(status.INVALID_ARGUMENT, { reason: 'INVALID_AUTH_CODE' })];
    }
    case 'GetProfile': {
      const { userId } = call.request;
      if (!USER_ID.test(userId)) return [invalid('user_id')];
      if (userId !== known.userId) return [outcome(status.NOT_FOUND, { reason: 'USER_NOT_FOUND' })];
      return [outcome(status.OK, { profileUserId: known.userId })];
    }
    case 'GetAccessToken': {
      const { userId, scopes, minTtl } = call.request;
      const malformed: string[] = [];
      const mayRefuse: string[] = [];
      if (!USER_ID.test(userId)) malformed.push('user_id');
      if (scopes.length > MAX_SCOPES || !scopes.every((s) => SCOPE.test(s))) malformed.push('scopes');
      if (minTtl) {
        if (durationNanos(minTtl) < 0n) malformed.push('min_ttl');
        else if (!isSpecDuration(minTtl)) mayRefuse.push('min_ttl');
      }
      if (malformed.length > 0) return malformed.map(invalid);
      const refusals = mayRefuse.map(invalid);
      if (userId !== known.userId) return [outcome(status.NOT_FOUND, { reason: 'USER_NOT_FOUND' }), ...refusals];
      const wanted = sortedUnique(scopes);
      if (wanted.some((s) => !known.grantedScopes.includes(s))) {
        return [outcome(status.FAILED_PRECONDITION, { reason: 'SCOPE_NOT_GRANTED' }), ...refusals];
      }
      const tokenScopes = wanted.length > 0 ? wanted : sortedUnique(known.grantedScopes);
      return [outcome(status.OK, { scopes: tokenScopes, hasToken: true }), ...refusals];
    }
  }
}

function tokenOutcome(response: GetAccessTokenResponse): Outcome {
  return outcome(status.OK, { scopes: sortedUnique(response.scopes), hasToken: response.accessToken.length > 0 && response.expireTime !== undefined });
}

function profileOutcome(response: GetProfileResponse): Outcome {
  return outcome(status.OK, { profileUserId: response.profile?.userId });
}

/** The outcome of a successful call whose response is `bytes`. */
function successFromBytes(rpc: Rpc, bytes: Buffer): Outcome {
  switch (rpc) {
    case 'ExchangeCode':
      return outcome(status.OK);
    case 'GetAccessToken':
      return tokenOutcome(METHODS.GetAccessToken.responseDeserialize(bytes));
    case 'GetProfile':
      return profileOutcome(METHODS.GetProfile.responseDeserialize(bytes));
  }
}

function errorOutcome(code: status, reason: string | undefined, metadata: Record<string, string> | undefined): Outcome {
  return outcome(code, { reason, field: metadata?.['field'] });
}

/** Asserts `observed` is one of `allowed`, and first of all neither INTERNAL nor UNKNOWN. */
function expectAllowed(observed: Outcome, details: string, allowed: Outcome[]): void {
  expect(observed.code, `answered ${observed.code}: ${details}`).not.to.be.oneOf(['INTERNAL', 'UNKNOWN']);
  expect(allowed, `answered ${JSON.stringify(observed)} (${details}); allowed: ${JSON.stringify(allowed)}`).to.deep.include(observed);
}

// ---------------------------------------------------------------------------
// Arbitraries


/** User IDs: garbage, well-formed but unknown, almost well-formed, and the known user's (bare or decorated). */
function userIds(known: KnownUser): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: anyString() },
    { weight: 3, arbitrary: digits(1, 255) },
    { weight: 1, arbitrary: digits(256, 300) },
    { weight: 3, arbitrary: fc.constant(known.userId) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.string({ unit: nastyChar, maxLength: 2 }), fc.string({ unit: nastyChar, maxLength: 2 }))
        .map(([before, after]) => `${before}${known.userId}${after}`),
    },
    { weight: 1, arbitrary: fc.constantFrom('0', '00', '-1', '+1', '1e5', '0x1f', ' 1', '1 ', '1\n', '1\u0000', '../1', '1/2', '%31', '１２３', '١٢٣') },
  );
}

/** One scope: granted ones, their near misses, well-formed strangers, and garbage. */
const grantedScope = fc.constantFrom(...SIGN_IN_SCOPES);
const scope = fc.oneof(
  { weight: 4, arbitrary: grantedScope },
  {
    weight: 2,
    arbitrary: grantedScope.chain((s) => fc.constantFrom(` ${s}`, `${s} `, `${s}\n`, `${s}\t`, s.toUpperCase(), `${s}/`, `${s} ${s}`, `${s}\u0000`)),
  },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 40 }),
      fc.constantFrom('https://www.googleapis.com/auth/gmail.send', 'https://mail.google.com/', 'OPENID', 'offline_access'),
    ),
  },
  { weight: 2, arbitrary: anyString(20) },
  { weight: 1, arbitrary: fc.constantFrom('', 'x'.repeat(512), 'x'.repeat(513)) },
);
const scopeLists = fc.oneof(
  { weight: 4, arbitrary: fc.array(scope, { maxLength: 6 }) },
  { weight: 2, arbitrary: fc.array(grantedScope, { maxLength: 8 }) },
  // Around the 50-entry cap, with duplicates.
  { weight: 1, arbitrary: fc.array(grantedScope, { minLength: 45, maxLength: 60 }) },
);

/** min_ttl: absent, sensible, negative, int64 extremes, nanos out of range or of the other sign. */
const seconds = fc
  .oneof(
    fc.bigInt(INT64_MIN, INT64_MAX),
    fc.bigInt(-4000n, 4000n),
    fc.bigInt(0n, 4000n),
    fc.constantFrom(INT64_MIN, INT64_MAX, -1n, 0n, 1n, 299n, 3300n, 3301n, MAX_DURATION_SECONDS, MAX_DURATION_SECONDS + 1n, -MAX_DURATION_SECONDS),
  )
  .map(String);
const nanos = fc.oneof(
  fc.integer({ min: -MAX_DURATION_NANOS, max: MAX_DURATION_NANOS }),
  fc.integer(),
  fc.constantFrom(-(2 ** 31), 2 ** 31 - 1, -1, 0, 1, MAX_DURATION_NANOS, 1_000_000_000, -1_000_000_000),
);
const minTtls = fc.option(fc.record({ seconds, nanos }), { nil: undefined, freq: 4 });

function exchangeCalls(): fc.Arbitrary<Call> {
  return fc.record({ authCode: anyString(), redirectUri: anyString() }).map((request): Call => ({ rpc: 'ExchangeCode', request }));
}

function tokenCalls(known: KnownUser): fc.Arbitrary<Call> {
  const userId = fc.oneof({ weight: 2, arbitrary: userIds(known) }, { weight: 1, arbitrary: fc.constant(known.userId) });
  return fc.record({ userId, scopes: scopeLists, minTtl: minTtls }).map((request): Call => ({ rpc: 'GetAccessToken', request }));
}

function profileCalls(known: KnownUser): fc.Arbitrary<Call> {
  return fc.record({ userId: userIds(known) }).map((request): Call => ({ rpc: 'GetProfile', request }));
}

function callsOf(rpc: Rpc, known: KnownUser): fc.Arbitrary<Call> {
  switch (rpc) {
    case 'ExchangeCode':
      return exchangeCalls();
    case 'GetAccessToken':
      return tokenCalls(known);
    case 'GetProfile':
      return profileCalls(known);
  }
}

function hugeCalls(known: KnownUser): fc.Arbitrary<Call> {
  return fc.oneof(
    fc.record({ authCode: fc.oneof(hugeString, anyString()), redirectUri: fc.oneof(hugeString, anyString()) }).map((request): Call => ({ rpc: 'ExchangeCode', request })),
    fc
      .record({
        userId: fc.oneof(hugeString, userIds(known)),
        scopes: fc.oneof(
          fc.array(grantedScope, { minLength: 100, maxLength: 3_000 }),
          fc.array(fc.constantFrom('x'.repeat(512), 'y'.repeat(513)), { minLength: 1, maxLength: 200 }),
          hugeString.map((s) => [s]),
        ),
        minTtl: minTtls,
      })
      .map((request): Call => ({ rpc: 'GetAccessToken', request })),
    fc.record({ userId: hugeString }).map((request): Call => ({ rpc: 'GetProfile', request })),
  );
}

// Raw wire arbitraries.

/**
 * The RPC a raw request goes to. ExchangeCode is drawn less often: each call
 * costs a ledger transaction and a call to Google, and every malformed
 * request to it ends in the same refusal.
 */
const rawRpc = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Rpc>('ExchangeCode') },
  { weight: 2, arbitrary: fc.constant<Rpc>('GetAccessToken') },
  { weight: 2, arbitrary: fc.constant<Rpc>('GetProfile') },
);




/** String field contents holding at least one invalid UTF-8 sequence among valid text. */
function dirtyText(known: KnownUser): fc.Arbitrary<Uint8Array> {
  const invalidChunk = fc.constantFrom(...INVALID_UTF8).map((b) => Uint8Array.from(b));
  const cleanChunk = fc.oneof(digits(1, 30), fc.constant(known.userId), grantedScope, anyString(10)).map(utf8);
  return fc
    .tuple(fc.array(cleanChunk, { maxLength: 2 }), invalidChunk, fc.array(fc.oneof(cleanChunk, invalidChunk), { maxLength: 3 }))
    .map(([before, bad, after]) => concatBytes([...before, bad, ...after]));
}

/** String field contents: mostly invalid UTF-8, sometimes valid (so the other fields decide). */
function textField(known: KnownUser): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 3, arbitrary: dirtyText(known) },
    { weight: 1, arbitrary: fc.oneof(fc.constant(known.userId), grantedScope, digits(1, 20)).map(utf8) },
  );
}

/** Well-formed requests whose string fields (by the proto's field numbers) hold invalid UTF-8. */
function invalidUtf8Requests(known: KnownUser): fc.Arbitrary<{ rpc: Rpc; bytes: Uint8Array }> {
  const text = textField(known);
  const exchange = fc.record({ code: text, redirect: fc.option(text, { nil: undefined }) }).map(({ code, redirect }) => {
    const w = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(code);
    if (redirect) w.tag(2, WireType.LengthDelimited).bytes(redirect);
    return { rpc: 'ExchangeCode' as const, bytes: w.finish() };
  });
  const token = fc
    .record({
      userId: text,
      scopes: fc.array(fc.oneof(text, grantedScope.map(utf8)), { maxLength: 4 }),
      minTtl: fc.option(fc.record({ seconds: fc.bigInt(0n, 4000n).map(String), nanos: fc.nat(MAX_DURATION_NANOS) }), { nil: undefined }),
    })
    .map(({ userId, scopes, minTtl }) => {
      const w = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(userId);
      for (const s of scopes) w.tag(2, WireType.LengthDelimited).bytes(s);
      if (minTtl) w.tag(3, WireType.LengthDelimited).bytes(Duration.encode(minTtl).finish());
      return { rpc: 'GetAccessToken' as const, bytes: w.finish() };
    });
  const profile = text.map((userId) => ({ rpc: 'GetProfile' as const, bytes: new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(userId).finish() }));
  // ExchangeCode less often, as for rawRpc.
  return fc.oneof({ weight: 1, arbitrary: exchange }, { weight: 2, arbitrary: token }, { weight: 2, arbitrary: profile });
}

/** One field on the wire, of any wire type a decoder can skip. */
type WireField =
  | { kind: 'varint'; no: number; value: bigint }
  | { kind: 'fixed64'; no: number; bytes: Uint8Array }
  | { kind: 'fixed32'; no: number; bytes: Uint8Array }
  | { kind: 'len'; no: number; bytes: Uint8Array }
  | { kind: 'group'; no: number; fields: WireField[] };

/** Field numbers: mostly the proto's own (1-3) and their neighbours, also huge and reserved ones. */
const fieldNo = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 4 }) },
  { weight: 2, arbitrary: fc.integer({ min: 5, max: 2 ** 29 - 1 }) },
  { weight: 1, arbitrary: fc.constantFrom(15, 16, 2047, 2048, 19_000, 19_999, 2 ** 29 - 1) },
);

/** Scalar fields of every wire type; length-delimited ones carry arbitrary bytes. */
const scalarField: fc.Arbitrary<WireField> = fc.oneof(
  fc.record({ kind: fc.constant('varint' as const), no: fieldNo, value: fc.oneof(fc.bigInt(0n, 2n ** 64n - 1n), fc.bigInt(0n, 300n)) }),
  fc.record({ kind: fc.constant('fixed64' as const), no: fieldNo, bytes: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('fixed32' as const), no: fieldNo, bytes: fc.uint8Array({ minLength: 4, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('len' as const), no: fieldNo, bytes: fc.uint8Array({ maxLength: 24 }) }),
);

/**
 * Top-level fields: scalars, groups of scalars, and length-delimited fields
 * holding well-formed fields (so a message-typed field such as min_ttl still
 * parses, whatever wire types and unknown fields it holds).
 */
const topField: fc.Arbitrary<WireField> = fc.oneof(
  { weight: 2, arbitrary: scalarField.filter((f) => f.kind !== 'len') },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('group' as const), no: fieldNo, fields: fc.array(scalarField, { maxLength: 3 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({ no: fieldNo, inner: fc.array(scalarField, { maxLength: 3 }) }).map(
      ({ no, inner }): WireField => ({ kind: 'len', no, bytes: writeFields(new BinaryWriter(), inner).finish() }),
    ),
  },
);

function writeFields(w: BinaryWriter, fields: readonly WireField[]): BinaryWriter {
  for (const f of fields) {
    switch (f.kind) {
      case 'varint':
        w.tag(f.no, WireType.Varint).uint64(f.value);
        break;
      case 'fixed64':
        w.tag(f.no, WireType.Bit64).raw(f.bytes);
        break;
      case 'fixed32':
        w.tag(f.no, WireType.Bit32).raw(f.bytes);
        break;
      case 'len':
        w.tag(f.no, WireType.LengthDelimited).bytes(f.bytes);
        break;
      case 'group':
        w.tag(f.no, WireType.StartGroup);
        writeFields(w, f.fields);
        w.tag(f.no, WireType.EndGroup);
        break;
    }
  }
  return w;
}

/** A small valid request of `rpc`, encoded. */
function validPart(rpc: Rpc, known: KnownUser): fc.Arbitrary<Uint8Array> {
  return callsOf(rpc, known).map(encodeCall);
}

/**
 * Requests mixing valid fields with the known fields under wrong wire types
 * and unknown fields (a concatenation of encodings is one merged message).
 */
function oddFieldRequests(known: KnownUser): fc.Arbitrary<{ rpc: Rpc; bytes: Uint8Array }> {
  return rawRpc.chain((rpc) =>
    fc
      .array(fc.oneof(validPart(rpc, known), fc.array(topField, { minLength: 1, maxLength: 4 }).map((fields) => writeFields(new BinaryWriter(), fields).finish())), {
        minLength: 1,
        maxLength: 4,
      })
      .map((parts) => ({ rpc, bytes: concatBytes(parts) })),
  );
}

/** One edit of a byte string. */
interface ByteEdit {
  at: number;
  op: 'set' | 'insert' | 'delete' | 'truncate';
  byte: number;
}

function applyEdits(bytes: Uint8Array, edits: readonly ByteEdit[]): Uint8Array {
  const out = [...bytes];
  for (const { at, op, byte } of edits) {
    const i = out.length === 0 ? 0 : at % (out.length + (op === 'insert' ? 1 : 0));
    if (op === 'set' && out.length > 0) out[i] = byte;
    else if (op === 'insert') out.splice(i, 0, byte);
    else if (op === 'delete') out.splice(i, 1);
    else if (op === 'truncate') out.length = i;
  }
  return Uint8Array.from(out);
}

/** Arbitrary bytes: uniform noise, and valid requests with a few bytes changed, inserted, removed or cut off. */
function arbitraryBytes(known: KnownUser): fc.Arbitrary<{ rpc: Rpc; bytes: Uint8Array }> {
  const edit = fc.record({ at: fc.nat(), op: fc.constantFrom('set' as const, 'insert' as const, 'delete' as const, 'truncate' as const), byte: fc.integer({ min: 0, max: 255 }) });
  return rawRpc.chain((rpc) =>
    fc
      .oneof(
        fc.uint8Array({ maxLength: 48 }),
        fc.tuple(validPart(rpc, known), fc.array(edit, { minLength: 1, maxLength: 3 })).map(([bytes, edits]) => applyEdits(bytes, edits)),
      )
      .map((bytes) => ({ rpc, bytes })),
  );
}

// ---------------------------------------------------------------------------

/** Document IDs and update times of `collection`, sorted. */
async function storedDocuments(db: Firestore, collection: string): Promise<string[]> {
  const snapshot = await db.collection(collection).get();
  return snapshot.docs.map((d) => `${d.id} @ ${d.updateTime.seconds}.${String(d.updateTime.nanoseconds).padStart(9, '0')}`).sort();
}

/**
 * The stored grants' content, without the fields a valid refresh of the
 * known user updates (when it last reached Google): what bad input must
 * never change.
 */
async function storedGrants(db: Firestore, collection: string): Promise<string[]> {
  const snapshot = await db.collection(collection).get();
  return snapshot.docs
    .map((d) => {
      const kept = Object.entries(d.data()).filter(([field]) => field !== 'last_refreshed_at' && field !== 'updated_at');
      return `${d.id} ${JSON.stringify(kept)}`;
    })
    .sort();
}

describe('input properties: every RPC under arbitrary input', () => {
  const stack = useStack();
  let known: KnownUser;
  let raw: RawGrpcClient;
  let address: string;
  let grantsBefore: string[];
  let exchangesBefore: string[];
  let logStart: number;
  const exchangesCollection = () => `${stack.collection}_code_exchanges`;

  before(async () => {
    const signedIn = await stack.signIn(stack.newUser());
    known = { userId: signedIn.userId, grantedScopes: signedIn.grantedScopes };
    address = `127.0.0.1:${stack.app.port}`;
    raw = new RawGrpcClient(address);
    grantsBefore = await storedGrants(stack.db, stack.collection);
    exchangesBefore = await storedDocuments(stack.db, exchangesCollection());
    logStart = stack.logs.length;
  });
  after(() => {
    raw?.close();
  });

  /** Calls through the typed client and returns the comparable outcome. */
  async function callTyped(call: Call): Promise<{ observed: Outcome; details: string }> {
    const options = { timeoutMs: 15_000 };
    try {
      switch (call.rpc) {
        case 'ExchangeCode':
          await stack.client.exchangeCode(call.request, options);
          return { observed: outcome(status.OK), details: 'OK' };
        case 'GetAccessToken':
          return { observed: tokenOutcome(await stack.client.getAccessToken(call.request, options)), details: 'OK' };
        case 'GetProfile':
          return { observed: profileOutcome(await stack.client.getProfile(call.request, options)), details: 'OK' };
      }
    } catch (err: unknown) {
      if (!isServiceError(err)) throw err;
      const info = errorInfoOf(err);
      return { observed: errorOutcome(err.code, info?.reason, info?.metadata), details: err.details };
    }
  }

  async function callRaw(rpc: Rpc, bytes: Uint8Array): Promise<{ observed: Outcome; details: string }> {
    const result: RawCallResult = await raw.unary(METHODS[rpc].path, bytes, 15_000);
    if (result.code === status.OK) return { observed: successFromBytes(rpc, result.response ?? Buffer.alloc(0)), details: 'OK' };
    return { observed: errorOutcome(result.code, result.reason, result.metadata), details: result.details };
  }

  /** Property body for typed calls: the answer is one the contract allows for what the server decoded. */
  async function typedCallAnswersByContract(call: Call): Promise<void> {
    const bytes = encodeCall(call);
    const decoded = serverView(call.rpc, bytes);
    expect(decoded, 'the generated codec reads back what it wrote').not.to.equal(undefined);
    const { observed, details } = await callTyped(call);
    expectAllowed(observed, details, allowedOutcomes(decoded as Call, bytes.length, known));
  }

  /** Property body for raw bytes the server's deserializer accepts. */
  async function rawCallAnswersByContract(rpc: Rpc, bytes: Uint8Array): Promise<void> {
    const decoded = serverView(rpc, bytes);
    expect(decoded, 'the generator built a request the server can decode').not.to.equal(undefined);
    const { observed, details } = await callRaw(rpc, bytes);
    expectAllowed(observed, details, allowedOutcomes(decoded as Call, bytes.length, known));
  }

  describe('typed requests', () => {
    it('ExchangeCode: arbitrary auth_code and redirect_uri are refused as INVALID_REQUEST or INVALID_AUTH_CODE', async () => {
      await fc.assert(fc.asyncProperty(exchangeCalls(), typedCallAnswersByContract), { numRuns: 40 });
    });

    it('GetAccessToken: arbitrary user_id, scopes and min_ttl get the contract answer, valid user included', async () => {
      await fc.assert(fc.asyncProperty(tokenCalls(known), typedCallAnswersByContract), { numRuns: 120 });
    });

    it('GetProfile: arbitrary user_id gets INVALID_REQUEST, USER_NOT_FOUND or the known profile', async () => {
      await fc.assert(fc.asyncProperty(profileCalls(known), typedCallAnswersByContract), { numRuns: 100 });
    });

    it('huge values up to beyond the 64 KiB limit: refused by size or by field, never INTERNAL', async () => {
      await fc.assert(fc.asyncProperty(hugeCalls(known), typedCallAnswersByContract), { numRuns: 20 });
    });
  });

  describe('raw bytes on the wire', () => {
    it('string fields holding invalid UTF-8 are read as replacement characters and refused or answered by contract', async () => {
      await fc.assert(
        fc.asyncProperty(invalidUtf8Requests(known), ({ rpc, bytes }) => rawCallAnswersByContract(rpc, bytes)),
        { numRuns: 80 },
      );
    });

    it('known fields under wrong wire types and unknown fields are skipped, never INTERNAL', async () => {
      await fc.assert(
        fc.asyncProperty(oddFieldRequests(known), ({ rpc, bytes }) => rawCallAnswersByContract(rpc, bytes)),
        { numRuns: 80 },
      );
    });

    it('arbitrary bytes that decode as a request get the contract answer', async () => {
      await fc.assert(
        fc.asyncProperty(arbitraryBytes(known), async ({ rpc, bytes }) => {
          fc.pre(serverView(rpc, bytes) !== undefined);
          await rawCallAnswersByContract(rpc, bytes);
        }),
        { numRuns: 80 },
      );
    });

    // grpc-js itself would answer INTERNAL "Error deserializing request"
    // before any handler runs; the server's tolerant decoders prevent that.
    it('arbitrary bytes that do not decode are refused as INVALID_ARGUMENT', async () => {
      await fc.assert(
        fc.asyncProperty(arbitraryBytes(known), async ({ rpc, bytes }) => {
          fc.pre(serverView(rpc, bytes) === undefined);
          const { observed, details } = await callRaw(rpc, bytes);
          expect(observed.code, details).to.equal(status[status.INVALID_ARGUMENT]);
        }),
        { numRuns: 100 },
      );
    });

    it('requests of exactly 64 KiB are read, one byte more is RESOURCE_EXHAUSTED', async () => {
      for (const rpc of RPCS) {
        for (const size of [MAX_REQUEST_BYTES - 1, MAX_REQUEST_BYTES, MAX_REQUEST_BYTES + 1]) {
          const bytes = paddedRequest(rpc, known.userId, size);
          expect(bytes.length).to.equal(size);
          await rawCallAnswersByContract(rpc, bytes);
        }
      }
    });
  });

  // Mocha runs a suite's own tests before its child suites: this one needs a suite of its own to run last.
  describe('afterwards', () => {
    it('is still SERVING, stored nothing, changed nothing and logged no error', async () => {
      expect(await checkHealth(address)).to.equal('SERVING');
      expect(await checkHealth(address, 'tokenbroker.v1.TokenBrokerService')).to.equal('SERVING');
      expect(grantsBefore.map((d) => d.split(' ')[0]), 'the known user is stored').to.deep.equal([known.userId]);
      expect(exchangesBefore, 'its sign-in is in the exchange ledger').to.have.length(1);
      expect(await storedGrants(stack.db, stack.collection), 'grants').to.deep.equal(grantsBefore);
      expect(await storedDocuments(stack.db, exchangesCollection()), 'exchange ledger').to.deep.equal(exchangesBefore);
      // Shared access tokens may be stored for the known user's valid calls, and for no one else.
      const sharedTokens = await storedDocuments(stack.db, `${stack.collection}_access_tokens`);
      expect(sharedTokens.filter((d) => !d.startsWith(`${known.userId}_`)), 'shared access tokens of other users').to.deep.equal([]);
      const logged = stack.logs.slice(logStart).map((line) => JSON.parse(line) as { severity?: string; code?: string; message?: string });
      expect(logged.length, 'failed calls are logged').to.be.greaterThan(0);
      const bad = logged.filter((l) => l.severity === 'ERROR' || l.severity === 'CRITICAL' || l.code === 'INTERNAL' || l.code === 'UNKNOWN');
      expect(bad, 'error log lines').to.deep.equal([]);
    });
  });
});

/**
 * A request of `rpc` exactly `size` bytes long: the known user's ID (or an
 * auth code) followed by an unknown field padding it out.
 */
function paddedRequest(rpc: Rpc, userId: string, size: number): Uint8Array {
  const head = new BinaryWriter().tag(1, WireType.LengthDelimited).string(rpc === 'ExchangeCode' ? 'not-a-code' : userId).finish();
  for (let pad = size - head.length - 4; pad >= 0; pad -= 1) {
    const bytes = concatBytes([head, new BinaryWriter().tag(15, WireType.LengthDelimited).bytes(new Uint8Array(pad)).finish()]);
    if (bytes.length === size) return bytes;
  }
  throw new Error(`cannot pad a ${rpc} request to ${size} bytes`);
}
