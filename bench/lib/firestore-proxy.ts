/**
 * A counting gRPC pass-through in front of the Firestore emulator. The
 * brokers under test are pointed at it (FIRESTORE_EMULATOR_HOST), so every
 * Firestore RPC they make is counted and timed here, outside the process
 * under test and without touching src/: the bench's evidence for "zero
 * Firestore reads on the cache-hit path" and its measure of time spent
 * waiting on Firestore during ExchangeCode. Messages pass as opaque bytes.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  Client,
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  type ClientDuplexStream,
  type ClientReadableStream,
  type handleBidiStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type MethodDefinition,
  type ServerDuplexStream,
  type ServerWritableStream,
  type ServiceError,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';

const SERVICE = 'google.firestore.v1.Firestore';
/** RPCs that read documents (each is at least one billed read in Firestore). */
const READ_METHODS = new Set(['GetDocument', 'ListDocuments', 'BatchGetDocuments', 'RunQuery', 'RunAggregationQuery', 'PartitionQuery', 'Listen', 'ExecutePipeline', 'ListCollectionIds']);
/** Headers grpc-js sets itself on the outgoing call. */
const TRANSPORT_HEADERS = ['user-agent', 'grpc-accept-encoding', 'accept-encoding', 'grpc-encoding', 'content-type', 'te', 'grpc-timeout'];

/** One RPC seen by the proxy, on the bench's performance.now() clock. */
export interface FirestoreCall {
  method: string;
  startMs: number;
  endMs: number;
  /** Response messages streamed back (documents, for BatchGetDocuments). */
  responses: number;
  code: number;
}

/** Counts per method since start. */
export type FirestoreCounts = Record<string, number>;

interface MethodShape {
  requestStream?: boolean;
  responseStream?: boolean;
}

const passthrough = (bytes: Buffer): Buffer => bytes;

/** Firestore's RPCs and their streaming shapes, from the client package's own proto JSON. */
function firestoreMethods(): Array<[string, MethodShape]> {
  const packageDir = path.dirname(require.resolve('@google-cloud/firestore/package.json'));
  const json = JSON.parse(readFileSync(path.join(packageDir, 'build', 'protos', 'v1.json'), 'utf8')) as {
    nested: { google: { nested: { firestore: { nested: { v1: { nested: { Firestore: { methods: Record<string, MethodShape> } } } } } } } };
  };
  return Object.entries(json.nested.google.nested.firestore.nested.v1.nested.Firestore.methods);
}

export class FirestoreProxy {
  readonly calls: FirestoreCall[] = [];
  private readonly counts: FirestoreCounts = {};

  private constructor(
    private readonly server: Server,
    private readonly upstream: Client,
    /** host:port brokers connect to. */
    readonly host: string,
  ) {}

  /** Starts a proxy on 127.0.0.1 (OS-picked port) forwarding to `emulatorHost`. */
  static async start(emulatorHost: string): Promise<FirestoreProxy> {
    const upstream = new Client(emulatorHost, credentials.createInsecure());
    const server = new Server();
    const definition: Record<string, MethodDefinition<Buffer, Buffer>> = {};
    const handlers: UntypedServiceImplementation = {};
    const sink: { proxy?: FirestoreProxy } = {};
    const record = (call: FirestoreCall) => sink.proxy?.record(call);
    for (const [name, shape] of firestoreMethods()) {
      const methodPath = `/${SERVICE}/${name}`;
      definition[name] = {
        path: methodPath,
        requestStream: shape.requestStream === true,
        responseStream: shape.responseStream === true,
        requestSerialize: passthrough,
        requestDeserialize: passthrough,
        responseSerialize: passthrough,
        responseDeserialize: passthrough,
      };
      handlers[name] = handlerFor(upstream, name, methodPath, shape, record);
    }
    server.addService(definition, handlers);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
    );
    const proxy = new FirestoreProxy(server, upstream, `127.0.0.1:${port}`);
    sink.proxy = proxy;
    return proxy;
  }

  /** A copy of the per-method counts. */
  snapshot(): FirestoreCounts {
    return { ...this.counts };
  }

  /** Whether `method` reads documents. */
  static isRead(method: string): boolean {
    return READ_METHODS.has(method);
  }

  /** Read RPCs in a counts snapshot. */
  static reads(counts: FirestoreCounts): number {
    return Object.entries(counts).reduce((sum, [method, n]) => sum + (READ_METHODS.has(method) ? n : 0), 0);
  }

  /** Every RPC in a counts snapshot. */
  static total(counts: FirestoreCounts): number {
    return Object.values(counts).reduce((sum, n) => sum + n, 0);
  }

  /** after - before, per method, leaving out zeros. */
  static delta(before: FirestoreCounts, after: FirestoreCounts): FirestoreCounts {
    const out: FirestoreCounts = {};
    for (const [method, n] of Object.entries(after)) {
      const d = n - (before[method] ?? 0);
      if (d !== 0) out[method] = d;
    }
    return out;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
    this.upstream.close();
  }

  private record(call: FirestoreCall): void {
    this.counts[call.method] = (this.counts[call.method] ?? 0) + 1;
    // Intervals are only needed for the ExchangeCode breakdown; keep memory bounded.
    if (this.calls.length < 200_000) this.calls.push(call);
  }
}

function forwardedMetadata(incoming: Metadata): Metadata {
  const out = incoming.clone();
  for (const header of TRANSPORT_HEADERS) out.remove(header);
  return out;
}

function deadlineOf(call: { getDeadline(): Date | number }): { deadline?: Date | number } {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? { deadline } : {};
}

function handlerFor(
  upstream: Client,
  method: string,
  methodPath: string,
  shape: MethodShape,
  record: (call: FirestoreCall) => void,
): handleUnaryCall<Buffer, Buffer> | handleServerStreamingCall<Buffer, Buffer> | handleBidiStreamingCall<Buffer, Buffer> {
  if (!shape.requestStream && !shape.responseStream) {
    const unary: handleUnaryCall<Buffer, Buffer> = (call, callback) => {
      const startMs = performance.now();
      upstream.makeUnaryRequest(methodPath, passthrough, passthrough, call.request, forwardedMetadata(call.metadata), deadlineOf(call), (err, res) => {
        record({ method, startMs, endMs: performance.now(), responses: res ? 1 : 0, code: err?.code ?? 0 });
        callback(err, res);
      });
    };
    return unary;
  }
  if (!shape.requestStream) {
    const serverStream: handleServerStreamingCall<Buffer, Buffer> = (call) => {
      const startMs = performance.now();
      const up = upstream.makeServerStreamRequest(methodPath, passthrough, passthrough, call.request, forwardedMetadata(call.metadata), deadlineOf(call));
      relayResponses(up, call, (responses, code) => record({ method, startMs, endMs: performance.now(), responses, code }));
    };
    return serverStream;
  }
  const bidi: handleBidiStreamingCall<Buffer, Buffer> = (call) => {
    const startMs = performance.now();
    const up = upstream.makeBidiStreamRequest(methodPath, passthrough, passthrough, forwardedMetadata(call.metadata), deadlineOf(call));
    call.on('data', (message: Buffer) => up.write(message));
    call.on('end', () => up.end());
    relayResponses(up, call, (responses, code) => record({ method, startMs, endMs: performance.now(), responses, code }));
  };
  return bidi;
}

/**
 * Relays the upstream call's responses to the caller's call, and its end or
 * error; `done` gets the count of responses and the final code. Cancelling
 * the caller's call cancels the upstream one.
 */
function relayResponses(
  up: ClientReadableStream<Buffer> | ClientDuplexStream<Buffer, Buffer>,
  call: ServerWritableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>,
  done: (responses: number, code: number) => void,
): void {
  let responses = 0;
  call.on('cancelled', () => up.cancel());
  up.on('data', (message: Buffer) => {
    responses += 1;
    call.write(message);
  });
  up.on('error', (err: ServiceError) => {
    done(responses, err.code);
    call.emit('error', err);
  });
  up.on('end', () => {
    done(responses, 0);
    call.end();
  });
}
