/**
 * Runs the real keep-alive job (`node dist/main.js keep-alive`) as a child
 * process against the bench stack and measures it from outside: wall time,
 * the job's own JSON report, upstream calls counted at the local Google,
 * and Firestore RPCs counted at the gRPC proxy the job talks through.
 */
import path from 'node:path';
import type { KeepAliveReport } from '../../src/domain/keep-alive';
import type { OAuthServerStats } from '../../src/local/oauth-server';
import { FirestoreProxy, type FirestoreCounts } from '../lib/firestore-proxy';
import { ManagedChild } from '../lib/processes';
import type { BenchStack } from '../lib/stack';

/** One run of the job and what it cost. */
export interface JobRun {
  label: string;
  args: string[];
  collection: string;
  exitCode: number | null;
  wallSeconds: number;
  /** Spawn to the first progress line (start-up plus the first page). */
  firstPageSeconds: number | undefined;
  report: KeepAliveReport & { skipped: number };
  /** Requests that reached the local Google's endpoints during the run. */
  upstream: OAuthServerStats;
  /** Requests the OAuth proxy forwarded (a second count of the same). */
  upstreamProxied: number;
  firestore: {
    byMethod: FirestoreCounts;
    /** Documents (messages) streamed back per read method: what Firestore bills as reads. */
    documentsByMethod: FirestoreCounts;
    readRpcs: number;
    documentsRead: number;
    /** Commit RPCs; each of the job's commits writes one document. */
    writes: number;
    totalRpcs: number;
  };
  /** CPU the job process used (user + system), sampled every 200 ms until it exited: a lower bound. */
  jobCpuSeconds: number;
  /** Refreshes (refreshed + dead) per second of wall time. */
  refreshesPerSecond: number;
}

const WRITE_METHODS = new Set(['Commit', 'BatchWrite', 'Write', 'CreateDocument', 'UpdateDocument', 'DeleteDocument']);
const READ_METHODS = new Set(['GetDocument', 'ListDocuments', 'BatchGetDocuments', 'RunQuery', 'RunAggregationQuery', 'PartitionQuery', 'Listen']);

/**
 * Runs the job once with `args` over `collection` and waits for its report,
 * killing it if it has not finished within `timeoutMs`.
 */
export async function runKeepAliveJob(stack: BenchStack, label: string, collection: string, args: string[], timeoutMs: number): Promise<JobRun> {
  const googleBefore = stack.google.stats();
  const proxiedBefore = stack.oauthProxy.count;
  const fsBefore = stack.firestore.snapshot();
  const callsBefore = stack.firestore.calls.length;
  const started = performance.now();
  const child = ManagedChild.start({
    name: `keep-alive (${label})`,
    command: process.execPath,
    args: [path.join(stack.repoRoot, 'dist', 'main.js'), 'keep-alive', ...args],
    env: { ...stack.env, TOKENBROKER_FIRESTORE_COLLECTION: collection },
    stdout: 'pipe',
    cwd: stack.repoRoot,
  });
  let reportLine: string | undefined;
  let firstPageMs: number | undefined;
  const stopListening = child.onLine((line) => {
    if (line.includes('"job":"keep-alive"')) reportLine = line;
    else if (firstPageMs === undefined && line.includes('"event":"keep_alive_progress"')) firstPageMs = performance.now() - started;
  });
  let cpuSeconds = 0;
  const sampler = setInterval(() => {
    try {
      cpuSeconds = child.cpuMs() / 1000;
    } catch {
      // exited between the check and the read
    }
  }, 200);
  const timer = setTimeout(() => void child.stop('SIGKILL'), timeoutMs);
  const exit = await child.exited;
  const wallSeconds = (performance.now() - started) / 1000;
  clearTimeout(timer);
  clearInterval(sampler);
  stopListening();
  if (reportLine === undefined) {
    throw new Error(`keep-alive (${label}) exited (${exit.code ?? exit.signal}) without a report${exit.signal === 'SIGKILL' ? ` after ${timeoutMs} ms` : ''}\n${child.diagnostics()}`);
  }
  const { scanned, due, refreshed, dead, failed, lastUserId } = JSON.parse(reportLine) as KeepAliveReport;
  const report: KeepAliveReport = { scanned, due, refreshed, dead, failed, lastUserId };

  const byMethod = FirestoreProxy.delta(fsBefore, stack.firestore.snapshot());
  const documentsByMethod: FirestoreCounts = {};
  for (const call of stack.firestore.calls.slice(callsBefore)) {
    if (READ_METHODS.has(call.method)) documentsByMethod[call.method] = (documentsByMethod[call.method] ?? 0) + call.responses;
  }
  const googleAfter = stack.google.stats();
  const upstream = Object.fromEntries(
    Object.entries(googleAfter).map(([key, n]) => [key, n - (googleBefore[key as keyof OAuthServerStats] ?? 0)]),
  ) as unknown as OAuthServerStats;
  const sum = (counts: FirestoreCounts, keep: (method: string) => boolean) => Object.entries(counts).reduce((s, [m, n]) => s + (keep(m) ? n : 0), 0);
  return {
    label,
    args,
    collection,
    exitCode: exit.code,
    wallSeconds,
    firstPageSeconds: firstPageMs === undefined ? undefined : firstPageMs / 1000,
    report: { ...report, skipped: report.scanned - report.due },
    upstream,
    upstreamProxied: stack.oauthProxy.count - proxiedBefore,
    firestore: {
      byMethod,
      documentsByMethod,
      readRpcs: sum(byMethod, (m) => READ_METHODS.has(m)),
      documentsRead: sum(documentsByMethod, () => true),
      writes: sum(byMethod, (m) => WRITE_METHODS.has(m)),
      totalRpcs: FirestoreProxy.total(byMethod),
    },
    jobCpuSeconds: cpuSeconds,
    refreshesPerSecond: (report.refreshed + report.dead) / wallSeconds,
  };
}
