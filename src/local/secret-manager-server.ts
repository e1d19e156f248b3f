/**
 * A local stand-in for Google Secret Manager: a plaintext gRPC server on 127.0.0.1 that answers
 * `AccessSecretVersion` the way Google does, so tests and the dev stack can use the real
 * `SecretManagerServiceClient` with no network and no credentials.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { v1 } from '@google-cloud/secret-manager';

const SERVICE_NAME = 'google.cloud.secretmanager.v1.SecretManagerService';
const SECRET_NAME = /^projects\/[^/]+\/secrets\/[^/]+$/;
const VERSION_NAME = /^(projects\/[^/]+\/secrets\/[^/]+)\/versions\/([^/]+)$/;

/** Options for {@link LocalSecretManagerServer.start}. */
export interface LocalSecretManagerServerOptions {
  /**
   * Secrets present from the start, keyed by secret name (`projects/P/secrets/S`); each value
   * becomes version 1 of that secret. Default: none.
   */
  secrets?: Record<string, string | Buffer>;
}

/**
 * A fault the server applies to the next AccessSecretVersion calls: fail with a gRPC status
 * code, or answer normally after a delay. `times` defaults to every call until
 * {@link LocalSecretManagerServer.clearFaults}.
 */
export type SecretManagerFault = { code: grpc.status; times?: number } | { delayMs: number; times?: number };

/** Client options for `SecretManagerServiceClient`, as its constructor declares them. */
export type SecretManagerClientOptions = NonNullable<ConstructorParameters<typeof v1.SecretManagerServiceClient>[0]>;

interface AccessRequest {
  name: string;
}

interface AccessResponse {
  name: string;
  payload: { data: Buffer; dataCrc32c: number };
}

interface SecretVersion {
  data: Buffer;
  enabled: boolean;
}

interface PendingFault {
  fault: SecretManagerFault;
  remaining: number;
}

/**
 * Local Secret Manager server implementing only `AccessSecretVersion`; every other method
 * answers UNIMPLEMENTED. Start with {@link LocalSecretManagerServer.start}, point a client at it
 * with {@link localSecretManagerClientOptions}, and {@link LocalSecretManagerServer.close} it.
 */
export class LocalSecretManagerServer {
  /** Always loopback: the fake must never be reachable from another machine. */
  readonly host = '127.0.0.1' as const;

  private readonly secrets = new Map<string, SecretVersion[]>();
  private readonly faults: PendingFault[] = [];
  private readonly delayTimers = new Set<NodeJS.Timeout>();
  private accesses = 0;
  private closed = false;

  private constructor(
    private readonly server: grpc.Server,
    /** The port the OS picked on 127.0.0.1. */
    readonly port: number,
  ) {}

  /** Starts a server on 127.0.0.1 at a port chosen by the OS, holding `options.secrets`. */
  static async start(options: LocalSecretManagerServerOptions = {}): Promise<LocalSecretManagerServer> {
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, boundPort) =>
        error ? reject(error) : resolve(boundPort),
      );
    });
    const instance = new LocalSecretManagerServer(server, port);
    try {
      for (const [name, data] of Object.entries(options.secrets ?? {})) instance.addVersion(name, data);
      server.addService(loadServiceDefinition(), {
        AccessSecretVersion: (call: grpc.ServerUnaryCall<AccessRequest, AccessResponse>, callback: grpc.sendUnaryData<AccessResponse>) =>
          instance.handleAccess(call, callback),
      });
    } catch (error: unknown) {
      // The port is already bound: release it rather than leak a listening server.
      server.forceShutdown();
      throw error;
    }
    return instance;
  }

  /** Number of AccessSecretVersion calls received, including those that failed or were faulted. */
  get accessCount(): number {
    return this.accesses;
  }

  /**
   * Adds a version holding `data` to `secretName` (`projects/P/secrets/S`), creating the secret if
   * needed, and returns the new version's name; `latest` then resolves to it.
   */
  addVersion(secretName: string, data: string | Buffer): string {
    if (!SECRET_NAME.test(secretName)) {
      throw new Error(`addVersion: secretName must look like projects/P/secrets/S, got "${secretName}"`);
    }
    const versions = this.secrets.get(secretName) ?? [];
    // Copy so a caller reusing its Buffer cannot change what the server holds.
    versions.push({ data: Buffer.from(data), enabled: true });
    this.secrets.set(secretName, versions);
    return `${secretName}/versions/${versions.length}`;
  }

  /**
   * Disables a numbered version (`projects/P/secrets/S/versions/N`); accessing it then fails with
   * FAILED_PRECONDITION, as Google does. Throws if the version does not exist.
   */
  disableVersion(versionName: string): void {
    const match = VERSION_NAME.exec(versionName);
    const version = match ? this.secrets.get(match[1])?.[Number(match[2]) - 1] : undefined;
    if (!match || !/^[1-9]\d*$/.test(match[2]) || !version) {
      throw new Error(`disableVersion: no such version "${versionName}"`);
    }
    version.enabled = false;
  }

  /** Queues a fault; queued faults apply in order, each to its `times` next calls. */
  injectFault(fault: SecretManagerFault): void {
    const times = fault.times ?? Number.POSITIVE_INFINITY;
    if (!(times > 0)) throw new Error(`injectFault: times must be a positive number, got ${String(fault.times)}`);
    if ('delayMs' in fault && !(fault.delayMs >= 0)) {
      throw new Error(`injectFault: delayMs must be a non-negative number, got ${String(fault.delayMs)}`);
    }
    this.faults.push({ fault, remaining: times });
  }

  /** Drops every queued fault; calls already being delayed still complete. */
  clearFaults(): void {
    this.faults.length = 0;
  }

  /**
   * Stops the server at once, cancelling calls in flight (a delayed call ends with CANCELLED on
   * the client). Safe to call more than once.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.delayTimers) clearTimeout(timer);
    this.delayTimers.clear();
    // forceShutdown, not tryShutdown: clients that keep their channel open must not stall teardown.
    this.server.forceShutdown();
  }

  private handleAccess(
    call: grpc.ServerUnaryCall<AccessRequest, AccessResponse>,
    callback: grpc.sendUnaryData<AccessResponse>,
  ): void {
    this.accesses += 1;
    const fault = this.takeFault();
    if (fault && 'code' in fault) {
      callback({ code: fault.code, details: `Injected fault (${grpc.status[fault.code] ?? fault.code})` });
      return;
    }
    const answer = (): void => {
      const result = this.resolve(call.request.name);
      if ('code' in result) callback(result);
      else callback(null, result);
    };
    if (!fault) {
      answer();
      return;
    }
    const timer = setTimeout(() => {
      this.delayTimers.delete(timer);
      answer();
    }, fault.delayMs);
    this.delayTimers.add(timer);
    call.on('cancelled', () => {
      clearTimeout(timer);
      this.delayTimers.delete(timer);
    });
  }

  private takeFault(): SecretManagerFault | undefined {
    const head = this.faults[0];
    if (!head) return undefined;
    head.remaining -= 1;
    if (head.remaining <= 0) this.faults.shift();
    return head.fault;
  }

  /** Looks a version up, with Google's status codes and messages for each way it can fail. */
  private resolve(name: string): AccessResponse | { code: grpc.status; details: string } {
    const match = VERSION_NAME.exec(name);
    if (!match || !(match[2] === 'latest' || /^[1-9]\d*$/.test(match[2]))) {
      return {
        code: grpc.status.INVALID_ARGUMENT,
        details: `Invalid resource field value in the request: name [${name}] must be projects/*/secrets/*/versions/{number|latest}.`,
      };
    }
    const [, secretName, versionId] = match;
    const versions = this.secrets.get(secretName);
    if (!versions || versions.length === 0) {
      return { code: grpc.status.NOT_FOUND, details: `Secret [${secretName}] not found or has no versions.` };
    }
    // Like Google, "latest" is the newest version whatever its state, not the newest enabled one.
    const number = versionId === 'latest' ? versions.length : Number(versionId);
    const versionName = `${secretName}/versions/${number}`;
    const version = versions[number - 1];
    if (!version) return { code: grpc.status.NOT_FOUND, details: `Secret Version [${versionName}] not found.` };
    if (!version.enabled) {
      return { code: grpc.status.FAILED_PRECONDITION, details: `Secret Version [${versionName}] is in DISABLED state.` };
    }
    return { name: versionName, payload: { data: Buffer.from(version.data), dataCrc32c: crc32c(version.data) } };
  }
}

/**
 * Client options that make `new SecretManagerServiceClient(...)` talk plaintext gRPC to `server`
 * with no credential lookup: insecure channel credentials replace auth, and an explicit
 * universe domain keeps google-auth-library from probing the GCE metadata server.
 */
export function localSecretManagerClientOptions(server: { host: string; port: number }): SecretManagerClientOptions {
  return {
    apiEndpoint: server.host,
    port: server.port,
    sslCreds: grpc.credentials.createInsecure(),
    universeDomain: 'googleapis.com',
  };
}

/** CRC32C (Castagnoli) of `data`, as Secret Manager reports it in `payload.dataCrc32c`. */
export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC32C_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    // 0x82f63b78 is the Castagnoli polynomial in reflected bit order.
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** The service definition from the client package's own protos, so the fake matches the client. */
function loadServiceDefinition(): grpc.ServiceDefinition {
  const protosPath = require.resolve('@google-cloud/secret-manager/build/protos/protos.json');
  const json = JSON.parse(readFileSync(protosPath, 'utf8')) as Parameters<typeof protoLoader.fromJSON>[0];
  // defaults: true so an empty request name arrives as '' (INVALID_ARGUMENT), not undefined.
  const definition = protoLoader.fromJSON(json, { defaults: true, oneofs: true })[SERVICE_NAME];
  if (!definition || 'format' in definition) {
    throw new Error(`${SERVICE_NAME} not found in ${protosPath}`);
  }
  return definition as grpc.ServiceDefinition;
}
