import { v1, type DocumentData, type Settings } from '@google-cloud/firestore';
import { credentials } from '@grpc/grpc-js';
import type { Readable } from 'node:stream';
import { decodeFields, encodeFields, type EncodedFields, type WireFields, type WireTimestamp } from './document-values';

/** A `google.firestore.v1.Document` as the RPC client returns it. */
export interface WireDocument {
  name?: string | null;
  fields?: WireFields | null;
  updateTime?: WireTimestamp | null;
}

/** A document's update time as a precondition names it (seconds as a decimal string, which int64 fields take). */
export interface UpdateTime {
  seconds: string;
  nanos: number;
}

interface WireWrite {
  update?: { name: string; fields: EncodedFields };
  delete?: string;
  currentDocument?: { exists: boolean } | { updateTime: UpdateTime };
}

/** Call options as google-gax takes them: a deadline for the call, its retries included, and request headers. */
export interface RpcCallOptions {
  timeout: number;
  otherArgs: { headers: Record<string, string> };
}

/** One message of a BatchGetDocuments stream: the document, or the name of one that does not exist. */
export interface WireBatchGetResponse {
  found?: WireDocument | null;
  missing?: string | null;
}

/**
 * The two Firestore RPCs single-document reads and writes need, as the
 * library's generated client (`v1.FirestoreClient` of
 * @google-cloud/firestore) offers them. Reads go through BatchGetDocuments,
 * as the high-level client's do: it answers a missing document with a
 * message, where GetDocument fails with NOT_FOUND, and every failed call
 * costs the generated client about half a millisecond of CPU (it builds a
 * protobuf decoder for the error's details each time).
 */
export interface DocumentRpc {
  batchGetDocuments(request: { database: string; documents: string[] }, options: RpcCallOptions): Readable;
  commit(request: { database: string; writes: WireWrite[] }, options: RpcCallOptions): Promise<unknown>;
  close(): Promise<void>;
}

/** A document read: its data, and the update time a conditional write names. */
export interface StoredDocument {
  data: DocumentData;
  updateTime: UpdateTime;
}

/**
 * One write of a commit. `data` replaces the whole document (fields it does
 * not name are gone), unless `precondition` fails: 'absent' writes only if
 * no document exists (ALREADY_EXISTS otherwise), an update time only if the
 * document is unchanged since the read that returned it (FAILED_PRECONDITION
 * otherwise).
 */
export interface DocumentWrite {
  name: string;
  data: DocumentData;
  precondition?: 'absent' | UpdateTime;
}

/**
 * Single-document reads and commits over the generated client, for the
 * paths that run on every sign-in and refresh: the high-level client wraps
 * each call in layers of its own (validation, tracing spans, retries, a
 * `require` per commit), and these calls cost about half its CPU
 * (bench/README, "Firestore calls"). The documents are the same either
 * way: the stores' queries still go through the high-level client.
 */
export class FirestoreDocuments {
  /** `projects/<project>/databases/<database>`. */
  readonly database: string;
  private readonly headers: Record<string, string>;

  /**
   * @param rpc the generated client, built in the composition root
   * @param headers sent with every call besides the resource header (the emulator's fixed token, for one)
   */
  constructor(
    private readonly rpc: DocumentRpc,
    projectId: string,
    databaseId: string,
    headers: Record<string, string> = {},
  ) {
    this.database = `projects/${projectId}/databases/${databaseId}`;
    // The resource header routes the call to the database, as the high-level client's does.
    this.headers = { 'google-cloud-resource-prefix': this.database, ...headers };
  }

  /**
   * Over a generated client of its own, built from the settings the
   * high-level client takes (project, database, host and port, `ssl: false`
   * for a plaintext emulator, custom headers, universe domain); without a
   * host it reaches Firestore with the application default credentials.
   */
  static open(settings: Settings): FirestoreDocuments {
    const { projectId, databaseId = '(default)', host, port, ssl, customHeaders, universeDomain } = settings;
    if (!projectId) throw new TypeError('the Firestore settings name no project');
    const rpc = new v1.FirestoreClient({
      projectId,
      ...(host === undefined ? {} : { servicePath: host }),
      ...(port === undefined ? {} : { port }),
      ...(ssl === false ? { sslCreds: credentials.createInsecure() } : {}),
      ...(universeDomain === undefined ? {} : { universeDomain }),
    });
    return new FirestoreDocuments(rpc, projectId, databaseId, customHeaders);
  }

  /** The resource name of document `id` in top-level `collection`. */
  name(collection: string, id: string): string {
    if (id.length === 0 || id.includes('/')) throw new TypeError('a document ID must be non-empty and hold no slash');
    return `${this.database}/documents/${collection}/${id}`;
  }

  /**
   * The document `name`, or undefined when there is none. A read that fails
   * with a transient code (UNAVAILABLE, INTERNAL, RESOURCE_EXHAUSTED,
   * DEADLINE_EXCEEDED: those the generated client's own configuration
   * retries a GetDocument on) is
   * tried again after 100 ms, then 1.3 times longer each time with jitter,
   * as long as the next attempt starts within `timeoutMs`.
   */
  async get(name: string, timeoutMs: number): Promise<StoredDocument | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (let delayMs = READ_RETRY_FIRST_MS; ; delayMs *= READ_RETRY_MULTIPLIER) {
      try {
        return await this.readOnce(name, Math.max(1, Math.ceil(deadline - performance.now())));
      } catch (err: unknown) {
        const waitMs = delayMs * (0.5 + Math.random() / 2);
        if (!READ_RETRY_CODES.has((err as { code?: unknown } | null)?.code) || performance.now() + waitMs >= deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    }
  }

  private readOnce(name: string, timeoutMs: number): Promise<StoredDocument | undefined> {
    return new Promise((resolve, reject) => {
      let found: WireDocument | undefined;
      this.rpc
        .batchGetDocuments({ database: this.database, documents: [name] }, this.options(timeoutMs))
        .on('data', (response: WireBatchGetResponse) => {
          if (response.found) found = response.found;
        })
        .on('error', reject)
        .on('end', () => resolve(found && { data: decodeFields(found.fields), updateTime: updateTimeOf(found.updateTime) }));
    });
  }

  /** Applies `writes` atomically: all of them or, when one precondition fails, none. */
  async commit(writes: readonly DocumentWrite[], timeoutMs: number): Promise<void> {
    await this.rpc.commit(
      {
        database: this.database,
        writes: writes.map(({ name, data, precondition }): WireWrite => {
          const write: WireWrite = { update: { name, fields: encodeFields(data) } };
          if (precondition === 'absent') write.currentDocument = { exists: false };
          else if (precondition) write.currentDocument = { updateTime: precondition };
          return write;
        }),
      },
      this.options(timeoutMs),
    );
  }

  /** Deletes the document `name`; deleting one that does not exist succeeds. */
  async delete(name: string, timeoutMs: number): Promise<void> {
    await this.rpc.commit({ database: this.database, writes: [{ delete: name }] }, this.options(timeoutMs));
  }

  close(): Promise<void> {
    return this.rpc.close();
  }

  private options(timeoutMs: number): RpcCallOptions {
    // A copy per call: the generated client adds the call's routing header to the object it is given.
    return { timeout: timeoutMs, otherArgs: { headers: { ...this.headers } } };
  }
}

function updateTimeOf(time: WireTimestamp | null | undefined): UpdateTime {
  return { seconds: String(time?.seconds ?? 0), nanos: time?.nanos ?? 0 };
}

/** The write lost a race: the document changed (FAILED_PRECONDITION) or appeared (ALREADY_EXISTS) since the read. */
export function isWriteConflict(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === GRPC_FAILED_PRECONDITION || code === GRPC_ALREADY_EXISTS;
}

const GRPC_DEADLINE_EXCEEDED = 4;
export const GRPC_NOT_FOUND = 5;
const GRPC_ALREADY_EXISTS = 6;
const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_FAILED_PRECONDITION = 9;
const GRPC_INTERNAL = 13;
const GRPC_UNAVAILABLE = 14;

const READ_RETRY_CODES = new Set<unknown>([GRPC_DEADLINE_EXCEEDED, GRPC_RESOURCE_EXHAUSTED, GRPC_INTERNAL, GRPC_UNAVAILABLE]);
const READ_RETRY_FIRST_MS = 100;
const READ_RETRY_MULTIPLIER = 1.3;
