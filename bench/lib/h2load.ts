/**
 * Drives a gRPC unary method with h2load and checks that the run measured
 * what it claims: h2load counts a gRPC error (HTTP 200, grpc-status in the
 * trailers) as a success, so every run is preceded by a probe call with the
 * same bytes (grpc-status 0, response frame size) and followed by checks
 * that every request completed with 2xx and that the DATA bytes received
 * equal requests x the expected response frame. Latency percentiles come
 * from h2load's --log-file (deleted before each run).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { grpcHeaders, rawUnaryOnce } from './raw-grpc';
import { quantileSorted } from './stats';

/** Where and what to call. */
export interface LoadTarget {
  /** Label in tables ("echo", "broker", ...). */
  name: string;
  port: number;
  /** e.g. /tokenbroker.v1.TokenBrokerService/GetAccessToken */
  path: string;
  /** The framed request message, sent on every call. */
  body: Buffer;
  authorization?: string;
  /** Allowed DATA bytes per response: exactly [n, n], or a range when the message varies. */
  frameBytes: readonly [number, number];
  /** The process serving it, to measure its CPU per call. */
  server?: { cpuMs(): number; mainThreadCpuMs(): number };
}

/** How hard to drive it. */
export interface LoadShape {
  requests: number;
  clients: number;
  streams: number;
}

/** One verified (or not) h2load run. */
export interface LoadResult {
  target: string;
  shape: LoadShape;
  requests: number;
  elapsedMs: number;
  rps: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  dataBytes: number;
  /** The server's CPU per call during the run, all threads and event loop only (µs); NaN when unknown. */
  serverCpuUsPerCall: number;
  serverMainCpuUsPerCall: number;
  valid: boolean;
  problems: string[];
}

/** The installed h2load, or undefined. */
export function findH2load(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const candidate = path.join(dir, 'h2load');
    if (dir !== '' && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Calls the target once with exactly h2load's bytes; throws unless grpc-status is 0 and the frame size is allowed. */
export async function probe(target: LoadTarget): Promise<Buffer> {
  const reply = await rawUnaryOnce(target.port, target.path, target.body, grpcHeaders(target.authorization));
  if (reply.httpStatus !== 200 || reply.grpcStatus !== 0) {
    throw new Error(`${target.name}: probe call failed: HTTP ${reply.httpStatus}, grpc-status ${reply.grpcStatus} ${reply.grpcMessage}`);
  }
  const [min, max] = target.frameBytes;
  if (reply.data.length < min || reply.data.length > max) {
    throw new Error(`${target.name}: probe answered ${reply.data.length} DATA bytes, expected ${min === max ? min : `${min}-${max}`}`);
  }
  return reply.data;
}

/** Runs h2load once (after a probe) and verifies the run. */
export async function runLoad(h2load: string, target: LoadTarget, shape: LoadShape, workDir: string): Promise<LoadResult> {
  const problems: string[] = [];
  await probe(target).catch((err: unknown) => problems.push(err instanceof Error ? err.message : String(err)));
  const bodyFile = path.join(workDir, `body-${target.name}.bin`);
  const logFile = path.join(workDir, `h2load-${target.name}.log`);
  writeFileSync(bodyFile, target.body);
  rmSync(logFile, { force: true }); // --log-file appends
  const args = [
    '-n', String(shape.requests),
    '-c', String(shape.clients),
    '-m', String(shape.streams),
    '-t', '1',
    '-H', 'content-type: application/grpc',
    '-H', 'te: trailers',
    ...(target.authorization === undefined ? [] : ['-H', `authorization: ${target.authorization}`]),
    '-d', bodyFile,
    `--log-file=${logFile}`,
    `http://127.0.0.1:${target.port}${target.path}`,
  ];
  const cpuBefore = target.server ? { all: target.server.cpuMs(), main: target.server.mainThreadCpuMs() } : undefined;
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(h2load, args, { timeout: 120_000, maxBuffer: 4 * 1024 * 1024 }, (error, out) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: out });
    });
  });
  if (code !== 0) problems.push(`h2load exited ${code}`);
  const cpuAfter = target.server ? { all: target.server.cpuMs(), main: target.server.mainThreadCpuMs() } : undefined;

  const finished = /finished in ([\d.]+)(us|ms|s), ([\d.]+) req\/s/.exec(stdout);
  const counts = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  const statuses = /status codes: (\d+) 2xx/.exec(stdout);
  const traffic = /traffic: .*?, [\d.]+\w* \((\d+)\) data/.exec(stdout);
  if (!finished || !counts || !statuses || !traffic) {
    problems.push(`h2load output not understood:\n${stdout.slice(-800)}`);
  }
  const unit = finished?.[2] === 's' ? 1000 : finished?.[2] === 'ms' ? 1 : 0.001;
  const elapsedMs = Number(finished?.[1] ?? NaN) * unit;
  const succeeded = Number(counts?.[4] ?? 0);
  const ok2xx = Number(statuses?.[1] ?? 0);
  const dataBytes = Number(traffic?.[1] ?? 0);
  if (succeeded !== shape.requests || ok2xx !== shape.requests) {
    problems.push(`${succeeded} succeeded and ${ok2xx} 2xx of ${shape.requests} (failed ${counts?.[5]}, errored ${counts?.[6]}, timeout ${counts?.[7]})`);
  }
  const [min, max] = target.frameBytes;
  if (dataBytes < shape.requests * min || dataBytes > shape.requests * max) {
    const expected = min === max ? `${shape.requests} x ${min} = ${shape.requests * min}` : `${shape.requests} x ${min}..${max}`;
    problems.push(`received ${dataBytes} DATA bytes, expected ${expected}: some calls did not answer the expected message (gRPC errors?)`);
  }

  const latencies = readLatencies(logFile, problems);
  if (latencies.length !== shape.requests) problems.push(`log file has ${latencies.length} rows for ${shape.requests} requests`);
  latencies.sort();
  return {
    target: target.name,
    shape,
    requests: shape.requests,
    elapsedMs,
    // h2load's own req/s: computed from the exact duration ("finished in" is rounded to 10 ms).
    rps: Number(finished?.[3] ?? NaN),
    p50Us: quantileSorted(latencies, 0.5),
    p90Us: quantileSorted(latencies, 0.9),
    p99Us: quantileSorted(latencies, 0.99),
    maxUs: latencies.length > 0 ? (latencies[latencies.length - 1] ?? NaN) : NaN,
    dataBytes,
    serverCpuUsPerCall: cpuBefore && cpuAfter ? ((cpuAfter.all - cpuBefore.all) * 1000) / shape.requests : NaN,
    serverMainCpuUsPerCall: cpuBefore && cpuAfter ? ((cpuAfter.main - cpuBefore.main) * 1000) / shape.requests : NaN,
    valid: problems.length === 0,
    problems,
  };
}

/** Column 3 (microseconds to end of response) of rows with status 200. */
function readLatencies(file: string, problems: string[]): Float64Array {
  if (!existsSync(file)) {
    problems.push('h2load wrote no log file');
    return new Float64Array(0);
  }
  const lines = readFileSync(file, 'utf8').split('\n');
  const out = new Float64Array(lines.length);
  let n = 0;
  let bad = 0;
  for (const line of lines) {
    if (line === '') continue;
    const cols = line.split('\t');
    if (cols[1] !== '200') bad += 1;
    out[n++] = Number(cols[2]);
  }
  if (bad > 0) problems.push(`${bad} log rows without HTTP 200`);
  return out.subarray(0, n);
}
