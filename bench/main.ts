/**
 * `npm run bench`: TokenBroker's GetAccessToken hot path against a bare
 * grpc-js echo server in the same run, plus the other performance targets
 * of the issue (naive baseline, stampede, cold start, memory, ExchangeCode
 * overhead). See bench/README.md for how to run it and read it.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { FirestoreDocuments } from '../src/adapters/firestore/firestore-documents';
import type { TokenBrokerClient } from '../src/client/token-broker-client';
import { ExchangeCodeRequest, ExchangeCodeResponse, GetAccessTokenRequest, GetAccessTokenResponse } from '../src/gen/tokenbroker/v1/token_broker';
import { LocalSecretManagerServer } from '../src/local/secret-manager-server';
import { NO_PRETENURING } from '../src/runtime/v8-settings';
import { attributeByStack, moduleLoadCosts, summarizeProfile } from './lib/cpu-profile';
import { FirestoreProxy, type FirestoreCounts } from './lib/firestore-proxy';
import { GcTrace } from './lib/gc-trace';
import { foreignCpu, load1, machineCpu } from './lib/machine-load';
import { findH2load, probe, runLoad, type LoadResult, type LoadShape, type LoadTarget } from './lib/h2load';
import { ManagedChild, processGroupCpuMs } from './lib/processes';
import { Cleanup } from './lib/cleanup';
import { frame, grpcHeaders, openSession, rawUnary, rawUnaryOnce, unframe } from './lib/raw-grpc';
import { renderExchange, renderMarkdown, renderMemory, renderSvg, type BenchResults, type CaseRow, type Diagnosis, type TargetRow } from './lib/report';
import {
  BenchStack,
  CALENDAR,
  CONTACTS,
  DRIVE,
  GATEWAY,
  EXCHANGE_CODE_PATH,
  GET_ACCESS_TOKEN_PATH,
  GMAIL,
  mapLimit,
  PHOTOS,
  PROJECT,
  SERVER_CLIENT_ID,
  type BrokerOptions,
  type BrokerProcess,
} from './lib/stack';
import { linearFit, median, quantile, round, unionLength } from './lib/stats';
import { parseSamples, sumOf } from '../test/support/prometheus-text';

const REPO_ROOT = path.resolve(__dirname, '..');
const OUT_DIR = path.resolve(process.env.BENCH_OUT ?? path.join(REPO_ROOT, 'bench', 'results'));

/** Tunables, from the environment (see README). */
const SETTINGS = {
  pairs: intEnv('BENCH_PAIRS', 25),
  /** Target length of one loaded h2load run, at echo speed. */
  runSeconds: numEnv('BENCH_RUN_SECONDS', 0.6),
  clients: 4,
  streams: 32,
  unloadedRequests: intEnv('BENCH_UNLOADED_REQUESTS', 6000),
  seedUsers: intEnv('BENCH_SEED_USERS', 50),
  exchangeSamples: intEnv('BENCH_EXCHANGE_SAMPLES', 60),
  /** Sign-ins (16 at a time) before the ExchangeCode samples: a broker in service has signed in many users, and V8 has optimized that path. */
  exchangeWarmup: intEnv('BENCH_EXCHANGE_WARMUP', 1000),
  stampedeCalls: intEnv('BENCH_STAMPEDE_CALLS', 1000),
  memoryUsers: intEnv('BENCH_MEMORY_USERS', 100_000),
  /** The memory curve stops after this long; in the full run, sooner when the run's budget is spent. */
  memorySeconds: numEnv('BENCH_MEMORY_SECONDS', 600),
  /** Extra node flags of the memory curve's broker, space-separated (e.g. --heap-growing-percent=50: the old generation grows to 1.5x what is live, not up to 4x). */
  memoryNodeArgs: process.env.BENCH_MEMORY_NODE_ARGS ?? '',
  /** The memory curve's broker holds at most this many users (TOKENBROKER_MAX_CACHED_USERS); a few hundred makes a control run: the same sign-ins, no cache growth. */
  memoryMaxCachedUsers: intEnv('BENCH_MEMORY_MAX_CACHED_USERS', 100_000),
  /** Sign-ins in flight at once during the memory curve. */
  memoryConcurrency: intEnv('BENCH_MEMORY_CONCURRENCY', 128),
  /** 1: each user signed in for the memory curve is also served a scoped token (one refresh, one cache hit), as a user in use is. */
  memoryServed: process.env.BENCH_MEMORY_SERVED === '1' ? 1 : 0,
  /** The whole `npm run bench`, its build included, aims to end within this; the memory phase gets what is left. */
  budgetSeconds: numEnv('BENCH_BUDGET_SECONDS', 285),
  profile: process.env.BENCH_PROFILE ?? 'auto',
  /** The logging, auth, metrics and V8 variants: '1' always, '0' never, 'auto' when target 1 or 2 is missed. */
  variants: process.env.BENCH_VARIANTS ?? 'auto',
  /** 'memory': only the memory curve (for long runs to 100,000 users); 'exchange': only target 8. */
  only: process.env.BENCH_ONLY ?? '',
};

const TARGETS = { throughputRatio: 0.85, p99Ratio: 1.5, unloadedP99Ms: 1, naiveRatio: 20, coldStartMs: 1000, bytesPerUser: 1024, exchangeOverheadMs: 3 };

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  return raw !== undefined && /^\d+$/.test(raw) && Number(raw) > 0 ? Number(raw) : fallback;
}

function numEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  return raw !== undefined && Number.isFinite(Number(raw)) && Number(raw) > 0 ? Number(raw) : fallback;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const cleanup = new Cleanup();

function machine() {
  let nproc = String(cpus().length);
  let h2loadVersion = 'unknown';
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim();
    h2loadVersion = execFileSync('h2load', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    // keep what we have
  }
  return { nproc, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, h2load: h2loadVersion, date: new Date().toISOString() };
}

/** Everything the phases share. */
interface Bench {
  stack: BenchStack;
  h2load: string;
  workDir: string;
  invalidRuns: string[];
  coldStarts: Array<{ name: string; secrets: string; ms: number }>;
  /** Records a run that did not verify. */
  check(run: LoadResult): LoadResult;
  /** Starts a broker (stopped at the end in any case) and records its cold start. */
  startBroker(name: string, options?: BrokerOptions): Promise<BrokerProcess>;
  load(target: LoadTarget, shape: LoadShape): Promise<LoadResult>;
}

const loaded = (requests: number): LoadShape => ({ requests, clients: SETTINGS.clients, streams: SETTINGS.streams });

/** The framed GetAccessTokenRequest every load run sends. */
function requestBody(userId: string, scopes: string[]): Buffer {
  return frame(GetAccessTokenRequest.encode({ userId, scopes, minTtl: undefined }).finish());
}

/**
 * Starts a baseline server. It runs with the V8 setting the broker's
 * process gives itself (src/runtime/v8-settings.ts), so that a ratio to it
 * measures the broker's code, not a runtime setting either could have.
 */
async function startServer(kind: 'echo' | 'naive', env: Record<string, string>, nodeArgs: string[] = []): Promise<{ child: ManagedChild; port: number }> {
  const child = ManagedChild.start({
    name: kind,
    command: process.execPath,
    args: [NO_PRETENURING, ...nodeArgs, '--require', 'tsx/cjs', path.join(REPO_ROOT, 'bench', 'servers', `${kind}-server.ts`)],
    env: { NODE_ENV: 'production', ...env },
    stdout: 'pipe',
    cwd: REPO_ROOT,
  });
  cleanup.push(() => child.stop());
  const line = await child.waitForLine((l) => l.includes('"listening"'), 20_000);
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

function echoEnv(response: GetAccessTokenResponse): Record<string, string> {
  return { BENCH_ECHO_RESPONSE: JSON.stringify({ accessToken: response.accessToken, expireTimeMs: response.expireTime?.getTime() ?? 0, scopes: response.scopes }) };
}

interface Counters {
  oauth: ReturnType<BenchStack['google']['stats']>;
  oauthProxied: number;
  firestore: FirestoreCounts;
}

function counters(stack: BenchStack): Counters {
  return { oauth: stack.google.stats(), oauthProxied: stack.oauthProxy.count, firestore: stack.firestore.snapshot() };
}

function upstreamDelta(before: Counters, after: Counters) {
  const endpoints: Array<keyof Counters['oauth']> = ['token', 'certs', 'revoke', 'tokenInfo'];
  const byMethod = FirestoreProxy.delta(before.firestore, after.firestore);
  return {
    oauthRequests: endpoints.reduce((sum, key) => sum + (after.oauth[key] - before.oauth[key]), 0),
    oauthProxied: after.oauthProxied - before.oauthProxied,
    firestoreReads: FirestoreProxy.reads(byMethod),
    firestoreCalls: FirestoreProxy.total(byMethod),
    firestoreByMethod: byMethod,
  };
}

/**
 * Seconds `npm run bench` spent before this process (the build), from the
 * BENCH_STARTED_S its script sets; 0 when unset or implausible (run directly).
 */
function secondsBeforeThisProcess(): number {
  const raw = process.env.BENCH_STARTED_S;
  if (raw === undefined || !/^\d+$/.test(raw)) return 0;
  const before = Date.now() / 1000 - performance.now() / 1000 - Number(raw);
  return before >= 0 && before < 600 ? before : 0;
}

async function main(): Promise<number> {
  const wallStart = performance.now();
  const buildS = secondsBeforeThisProcess();
  const h2load = findH2load();
  if (!h2load) {
    say('SKIPPED: h2load is not installed, so nothing was measured (this is not a failure).');
    say('Install it: apt-get install nghttp2-client   (Debian/Ubuntu package; provides h2load)');
    say('Then run `npm run bench` again.');
    return 0;
  }
  // Nothing may leave this machine; children get a cleaned environment too (processes.ts).
  process.env.METADATA_SERVER_DETECTION = 'none';
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('GOOGLE_') || name.startsWith('FIRESTORE_')) delete process.env[name];
  }

  const info = machine();
  say(`TokenBroker benchmark: ${info.nproc} cores (${info.cpuModel}), Node ${info.node}, ${info.h2load}`);
  const workDir = mkdtempSync(path.join(tmpdir(), 'tokenbroker-bench-'));
  cleanup.push(() => rmSync(workDir, { recursive: true, force: true }));
  mkdirSync(OUT_DIR, { recursive: true });

  const loadAtStart = load1();
  if (loadAtStart > 1.5) say(`WARNING: load average ${loadAtStart.toFixed(2)} before the start: something else is using this machine; ratios stay comparable, absolute numbers will not be.`);
  say('starting the Firestore emulator, the local Google and the counting proxies...');
  const stack = await BenchStack.start(workDir, REPO_ROOT, (step) => cleanup.push(step));
  const bench: Bench = {
    stack,
    h2load,
    workDir,
    invalidRuns: [],
    coldStarts: [],
    check(run) {
      if (!run.valid) this.invalidRuns.push(`${run.target} (-c ${run.shape.clients} -m ${run.shape.streams}, ${run.requests} req): ${run.problems.join('; ')}`);
      return run;
    },
    async startBroker(name, options = {}) {
      const broker = await stack.startBroker(name, options);
      cleanup.push(() => broker.child.stop());
      if (!options.nodeArgs) {
        const sm = options.env?.TOKENBROKER_OAUTH_CLIENT_SECRET?.startsWith('projects/') === true;
        this.coldStarts.push({ name, secrets: sm ? 'Secret Manager (local)' : 'file:', ms: broker.coldStartMs });
      }
      return broker;
    },
    async load(target, shape) {
      return this.check(await runLoad(h2load, target, shape, workDir));
    },
  };

  if (SETTINGS.only === 'memory') return memoryOnly(bench, info, wallStart);
  if (SETTINGS.only === 'exchange') return exchangeOnly(bench, info, wallStart);

  // --- The broker under test, its callers and its users --------------------------------------
  const broker = await bench.startBroker('broker');
  say(`broker serving on ${broker.address}, ${broker.coldStartMs.toFixed(0)} ms after spawn`);
  const gatewayToken = stack.callerToken(GATEWAY);
  const photosToken = stack.callerToken(PHOTOS);
  const gateway = stack.clientAs(broker, gatewayToken);
  const photos = stack.clientAs(broker, photosToken);
  cleanup.push(() => {
    gateway.close();
    photos.close();
  });
  /**
   * New users signed in through `b` (ExchangeCode as the gateway, then one
   * GetAccessToken each, 16 at a time): every broker measured under load
   * has this history first, as a broker in production has, since calls that
   * wait on Google and Firestore shape how V8 treats every later call.
   */
  const signInUsers = async (b: BrokerProcess, count: number): Promise<string[]> => {
    const gatewayTo = b === broker ? gateway : stack.clientAs(b, gatewayToken);
    const photosTo = b === broker ? photos : stack.clientAs(b, photosToken);
    try {
      const ids = await mapLimit(
        Array.from({ length: count }, () => stack.newUser()),
        16,
        async (user) => (await gatewayTo.exchangeCode({ authCode: stack.mintCode(user) }, { timeoutMs: 15_000 })).userId,
      );
      await mapLimit(ids, 16, (userId) => photosTo.getAccessToken({ userId, scopes: [DRIVE] }, { timeoutMs: 15_000 }));
      return ids;
    } finally {
      if (b !== broker) {
        gatewayTo.close();
        photosTo.close();
      }
    }
  };
  const seedStart = performance.now();
  const users = await signInUsers(broker, SETTINGS.seedUsers);
  say(`seeded ${users.length} users (ExchangeCode as the gateway, then one GetAccessToken each) in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);
  const hotUser = users[0] as string;
  const body = requestBody(hotUser, [DRIVE]);
  const authorization = `Bearer ${photosToken}`;
  const brokerReply = await rawUnaryOnce(broker.port, GET_ACCESS_TOKEN_PATH, body, grpcHeaders(authorization));
  const brokerMessage = unframe(brokerReply.data);
  if (brokerReply.grpcStatus !== 0 || !brokerMessage) throw new Error(`broker probe failed: grpc-status ${brokerReply.grpcStatus} ${brokerReply.grpcMessage}`);
  const response = GetAccessTokenResponse.decode(brokerMessage);
  const frameBytes = brokerReply.data.length;
  const echo = await startServer('echo', echoEnv(response));
  const echoReply = await rawUnaryOnce(echo.port, GET_ACCESS_TOKEN_PATH, body, grpcHeaders(authorization));
  if (!echoReply.data.equals(brokerReply.data)) throw new Error('the echo server does not answer the same bytes as the broker');
  const target = (name: string, server: { port: number; child: ManagedChild }): LoadTarget => ({
    name,
    port: server.port,
    path: GET_ACCESS_TOKEN_PATH,
    body,
    authorization,
    frameBytes: [frameBytes, frameBytes],
    server: server.child,
  });
  const echoTarget = target('echo', echo);
  const brokerTarget = target('broker', broker);
  say(`response frame ${frameBytes} B (byte-identical from broker and echo); request frame ${body.length} B + ${authorization.length} B authorization header`);

  // --- 1-3: cache-hit throughput and latency vs the echo, upstream counted --------------------
  // The audit lines of the seeding's GetAccessToken calls and the probe reach the bench through a pipe, under load maybe late: wait for them all.
  const linesBefore = await auditLinesReach(broker.child, users.length + 1);
  if (linesBefore !== users.length + 1) say(`  ${linesBefore} token_issued lines before the cache-hit runs, for ${users.length + 1} GetAccessToken calls`);
  const before = counters(stack);
  let brokerCalls = 0;
  const brokerRun = (shape: LoadShape) => {
    brokerCalls += shape.requests + 1; // + the probe
    return bench.load(brokerTarget, shape);
  };
  say('warming up both servers...');
  const echoWarm = await bench.load(echoTarget, loaded(20_000));
  await brokerRun(loaded(20_000));
  const cpuBefore = { machine: machineCpu(), broker: broker.child.cpuMs(), echo: echo.child.cpuMs(), bench: process.cpuUsage() };
  const requests = Math.max(5000, Math.round((echoWarm.rps * SETTINGS.runSeconds) / 1000) * 1000);
  say(`main comparison: ${SETTINGS.pairs} pairs (echo, then broker) of ${requests} requests at -c ${SETTINGS.clients} -m ${SETTINGS.streams}`);
  const pairs: Array<{ echo: LoadResult; broker: LoadResult; ratio: number; p99Ratio: number }> = [];
  for (let i = 0; i < SETTINGS.pairs; i += 1) {
    const e = await bench.load(echoTarget, loaded(requests));
    const b = await brokerRun(loaded(requests));
    pairs.push({ echo: e, broker: b, ratio: b.rps / e.rps, p99Ratio: b.p99Us / e.p99Us });
    say(`  pair ${i + 1}: echo ${e.rps.toFixed(0)} req/s p99 ${(e.p99Us / 1000).toFixed(2)} ms | broker ${b.rps.toFixed(0)} req/s p99 ${(b.p99Us / 1000).toFixed(2)} ms | ratio ${(b.rps / e.rps).toFixed(3)}${e.valid && b.valid ? '' : ' INVALID'}`);
  }
  const benchCpu = process.cpuUsage(cpuBefore.bench);
  const machineDuringPairs = foreignCpu(
    cpuBefore.machine,
    machineCpu(),
    broker.child.cpuMs() - cpuBefore.broker + (echo.child.cpuMs() - cpuBefore.echo) + (benchCpu.user + benchCpu.system) / 1000,
  );
  say(`  machine during the pairs: ${machineDuringPairs.busyCoreS.toFixed(1)} core-s busy of ${(machineDuringPairs.wallS * Number(info.nproc)).toFixed(1)}; broker + echo + bench ${machineDuringPairs.knownCoreS.toFixed(1)}, everything else (h2load included) ${machineDuringPairs.otherCoreS.toFixed(1)}, steal ${machineDuringPairs.stealCoreS.toFixed(1)}`);
  say('unloaded (1 connection, 1 stream)...');
  const single: LoadShape = { requests: SETTINGS.unloadedRequests, clients: 1, streams: 1 };
  const unloaded: Array<{ echo: LoadResult; broker: LoadResult }> = [];
  for (let i = 0; i < 2; i += 1) unloaded.push({ echo: await bench.load(echoTarget, single), broker: await brokerRun(single) });
  const hotPath = { ...upstreamDelta(before, counters(stack)), brokerCalls, auditLines: (await auditLinesReach(broker.child, linesBefore + brokerCalls)) - linesBefore };
  say(`hot path: ${hotPath.brokerCalls} calls, ${hotPath.auditLines} token_issued lines, ${hotPath.firestoreCalls} Firestore RPCs (${hotPath.firestoreReads} reads), ${hotPath.oauthRequests} upstream requests`);

  // --- Logging, authentication, metrics and V8 settings: what each costs the hot path ----------
  // Diagnosis, like the profile: run when target 1 or 2 is missed (or asked for), since it takes about 50 s
  // of a run that also has to sign in 100,000 users for target 7.
  const medianRatio = median(pairs.map((p) => p.ratio));
  const medianP99Ratio = median(pairs.map((p) => p.p99Ratio));
  const unloadedBrokerP99Ms = Math.max(...unloaded.map((u) => u.broker.p99Us)) / 1000;
  const hotPathMissed = medianRatio < TARGETS.throughputRatio || medianP99Ratio > TARGETS.p99Ratio || unloadedBrokerP99Ms >= TARGETS.unloadedP99Ms;
  const variants =
    SETTINGS.variants === '1' || (SETTINGS.variants === 'auto' && hotPathMissed)
      ? await variantRounds(bench, { echoTarget, brokerTarget, target, requests, single, unloaded, signInUsers, brokerRun })
      : undefined;
  if (!variants) say(`logging, authentication, metrics and V8 variants: not run (${SETTINGS.variants === '0' ? 'BENCH_VARIANTS=0' : 'targets 1 and 2 met; BENCH_VARIANTS=1 runs them'})`);

  // --- 4: the naive baseline --------------------------------------------------------------------
  say('naive baseline (new OAuth2Client + Firestore read + decrypt per call)...');
  const naive = await startServer('naive', {
    BENCH_NAIVE_CONFIG: JSON.stringify({
      emulatorHost: stack.emulator.host,
      projectId: PROJECT,
      collection: stack.collection,
      keysetFile: stack.keysetFile,
      clientId: SERVER_CLIENT_ID,
      clientSecret: stack.clientSecret,
      tokenUrl: stack.google.endpoints.tokenUrl,
    }),
  });
  // Its token and expiry differ per call: allow the expiry's nanos to vary in encoded size.
  const naiveTarget: LoadTarget = { ...target('naive', naive), frameBytes: [frameBytes - 6, frameBytes + 6] };
  const naiveStats = async () => {
    const line = naive.child.waitForLine((l) => l.includes('"stats"'), 5000);
    naive.child.signal('SIGUSR2');
    return JSON.parse(await line) as { ok: number; errors: number };
  };
  const naiveWarm = await bench.load(naiveTarget, loaded(500));
  const naiveBefore = await naiveStats();
  const naiveRequests = Math.max(500, Math.round((naiveWarm.rps * SETTINGS.runSeconds) / 100) * 100);
  const naiveRun = await bench.load(naiveTarget, loaded(naiveRequests));
  const naiveAfter = await naiveStats();
  if (naiveAfter.errors !== naiveBefore.errors || naiveAfter.ok - naiveBefore.ok !== naiveRequests + 1) {
    bench.invalidRuns.push(`naive: the server counted ${naiveAfter.ok - naiveBefore.ok} ok and ${naiveAfter.errors - naiveBefore.errors} errors for ${naiveRequests} requests + 1 probe`);
  }
  await naive.child.stop();
  const brokerMedianRps = median(pairs.map((p) => p.broker.rps));
  say(`  naive ${naiveRun.rps.toFixed(0)} req/s, p99 ${(naiveRun.p99Us / 1000).toFixed(1)} ms; broker/naive ${(brokerMedianRps / naiveRun.rps).toFixed(1)}x`);

  // --- 8: ExchangeCode beyond waiting on Google and Firestore ----------------------------------
  const exchange = await exchangeBreakdown(stack, broker, gateway, photos, hotUser);
  say(`ExchangeCode p50 ${exchange.totalP50Ms.toFixed(2)} ms = waiting ${exchange.waitP50Ms.toFixed(2)} (Google ${exchange.googleP50Ms.toFixed(2)}, Firestore ${exchange.firestoreP50Ms.toFixed(2)} over ${exchange.firestoreCallsPerExchange} RPCs) + ours ${exchange.overheadP50Ms.toFixed(2)} ms (${exchange.overheadCorrectedP50Ms.toFixed(2)} ms without the proxies' hops); in the broker: handler ${exchange.handlerP50Ms.toFixed(2)} ms, its own ${exchange.ownP50Ms.toFixed(2)} ms`);

  // --- 5 and 6: stampede across 3 instances, two of them fresh ---------------------------------
  say('stampede: 2 more instances...');
  const peers = [await bench.startBroker('peer-1'), await bench.startBroker('peer-2')];
  const stampedeClients: TokenBrokerClient[] = [broker, ...peers].map((b) => stack.clientAs(b, photosToken));
  cleanup.push(() => stampedeClients.forEach((c) => c.close()));
  const stampedeUser = (await gateway.exchangeCode({ authCode: stack.mintCode(stack.newUser()) })).userId;
  const stampedes: BenchResults['stampedes'] = [];
  for (const scopes of [[CALENDAR], [GMAIL, CONTACTS]]) {
    const b = counters(stack);
    const t0 = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: SETTINGS.stampedeCalls }, (_, i) =>
        (stampedeClients[i % stampedeClients.length] as TokenBrokerClient).getAccessToken({ userId: stampedeUser, scopes }, { timeoutMs: 15_000 }).then(
          (r) => ({ token: r.accessToken as string | undefined, error: undefined as string | undefined }),
          (err: unknown) => ({ token: undefined, error: status[(err as { code?: number }).code ?? status.UNKNOWN] ?? 'UNKNOWN' }),
        ),
      ),
    );
    const ms = performance.now() - t0;
    const a = counters(stack);
    const errors: Record<string, number> = {};
    for (const o of outcomes) if (o.error) errors[o.error] = (errors[o.error] ?? 0) + 1;
    const row = {
      scopes,
      calls: outcomes.length,
      ok: outcomes.filter((o) => o.token !== undefined).length,
      errors,
      distinctTokens: new Set(outcomes.map((o) => o.token).filter((t) => t !== undefined)).size,
      refreshes: a.oauth.refreshToken - b.oauth.refreshToken,
      firestoreCalls: FirestoreProxy.total(FirestoreProxy.delta(b.firestore, a.firestore)),
      ms,
    };
    stampedes.push(row);
    say(`  ${row.calls} calls for [${scopes.map((s) => s.split('/').pop()).join(' ')}] over 3 instances: ${row.ok} ok, ${row.distinctTokens} distinct token(s), ${row.refreshes} refresh(es) at Google, ${row.firestoreCalls} Firestore RPCs, ${ms.toFixed(0)} ms`);
  }
  for (const peer of peers) await peer.child.stop();
  await broker.child.stop(); // frees the CPU for what follows

  // --- 6: cold start with the local Secret Manager --------------------------------------------
  await secretManagerColdStarts(bench);
  say(`cold starts (spawn to health SERVING): ${bench.coldStarts.map((c) => `${c.name} ${c.ms.toFixed(0)} ms`).join(', ')}`);

  // --- 7: resident memory per cached user ------------------------------------------------------
  const elapsedS = buildS + (performance.now() - wallStart) / 1000;
  const coldOk = bench.coldStarts.every((c) => c.ms < TARGETS.coldStartMs);
  const diagnosing = SETTINGS.profile === '1' || (SETTINGS.profile === 'auto' && (hotPathMissed || !coldOk));
  // What follows the curve: its settled end, then the diagnosis (about 25 s) when it runs, and the report.
  const reserveS = diagnosing ? 30 : 8;
  const memorySeconds = Math.max(20, Math.min(SETTINGS.memorySeconds, SETTINGS.budgetSeconds - elapsedS - reserveS));
  const memory = await memoryCurve(bench, gatewayToken, memorySeconds);

  // --- Verdicts, diagnosis, report ---------------------------------------------------------------
  const naiveRatio = brokerMedianRps / naiveRun.rps;
  const coldFile = bench.coldStarts.filter((c) => c.secrets === 'file:');
  const coldSm = bench.coldStarts.filter((c) => c.secrets !== 'file:');
  let diagnosis: Diagnosis | undefined;
  if (diagnosing) {
    diagnosis = await diagnose(bench, { body, authorization, frameBytes, response, requests, signInUsers, hotPath: SETTINGS.profile === '1' || hotPathMissed, startup: SETTINGS.profile === '1' || !coldOk });
  }

  const cases: CaseRow[] = [
    caseRow('echo', 'bare grpc-js echo (same proto, reply, headers)', pairs.map((p) => p.echo), undefined),
    caseRow('broker', 'TokenBroker GetAccessToken, cache hit, caller auth on, stdout pipe', pairs.map((p) => p.broker), medianRatio),
    ...(variants?.loadedCases ?? []),
    caseRow('naive', 'naive: OAuth2Client + Firestore read + decrypt per call', [naiveRun], naiveRun.rps / median(pairs.map((p) => p.echo.rps))),
    caseRow('echo-unloaded', 'echo, unloaded (-c 1 -m 1)', unloaded.map((u) => u.echo), undefined),
    caseRow('broker-unloaded', 'TokenBroker, unloaded (-c 1 -m 1)', unloaded.map((u) => u.broker), median(unloaded.map((u) => u.broker.rps / u.echo.rps))),
    ...(variants?.unloadedCases ?? []),
  ];
  const targets: TargetRow[] = [
    {
      id: '1',
      text: `cache-hit throughput >= ${TARGETS.throughputRatio} x echo (median of ${pairs.length} paired ratios, auth on)`,
      measured:
        `${medianRatio.toFixed(3)} (pairs ${pairs.map((p) => p.ratio.toFixed(2)).join(', ')}); ` +
        `by server CPU per call, which a busy machine disturbs far less: ${(median(pairs.map((p) => p.echo.serverCpuUsPerCall)) / median(pairs.map((p) => p.broker.serverCpuUsPerCall))).toFixed(3)}`,
      pass: medianRatio >= TARGETS.throughputRatio,
      gated: true,
    },
    {
      id: '2a',
      text: `p99 at -c 4 -m 32 <= ${TARGETS.p99Ratio} x echo p99 (median of paired ratios)`,
      measured: `${medianP99Ratio.toFixed(2)} x (broker ${(median(pairs.map((p) => p.broker.p99Us)) / 1000).toFixed(2)} ms, echo ${(median(pairs.map((p) => p.echo.p99Us)) / 1000).toFixed(2)} ms)`,
      pass: medianP99Ratio <= TARGETS.p99Ratio,
      gated: true,
    },
    {
      id: '2b',
      text: 'unloaded (1 connection, 1 stream) p99 < 1 ms',
      measured: `${unloadedBrokerP99Ms.toFixed(3)} ms (worst of ${unloaded.length} runs of ${SETTINGS.unloadedRequests}; echo ${(Math.max(...unloaded.map((u) => u.echo.p99Us)) / 1000).toFixed(3)} ms)`,
      pass: unloadedBrokerP99Ms < TARGETS.unloadedP99Ms,
      gated: true,
    },
    {
      id: '3',
      text: 'zero Firestore reads and zero upstream calls on the cache-hit path (counted)',
      measured: `${hotPath.brokerCalls} calls: ${hotPath.firestoreReads} Firestore reads (${hotPath.firestoreCalls} Firestore RPCs of any kind, gRPC proxy count), ${hotPath.oauthRequests} OAuth server requests (stats()), ${hotPath.oauthProxied} via its proxy; ${hotPath.auditLines} audit lines`,
      pass: hotPath.firestoreCalls === 0 && hotPath.oauthRequests === 0 && hotPath.oauthProxied === 0 && hotPath.auditLines === hotPath.brokerCalls,
      gated: true,
    },
    {
      id: '4',
      text: `>= ${TARGETS.naiveRatio} x the naive baseline's throughput`,
      measured: `${naiveRatio.toFixed(1)} x (naive ${naiveRun.rps.toFixed(0)} req/s)`,
      pass: naiveRatio >= TARGETS.naiveRatio,
      gated: false,
    },
    {
      id: '5',
      text: `stampede: ${SETTINGS.stampedeCalls} concurrent calls, never-requested scope set, 3 instances -> 1 upstream refresh`,
      measured: stampedes.map((s) => `${s.refreshes} refresh, ${s.ok}/${s.calls} ok, ${s.distinctTokens} token, ${s.ms.toFixed(0)} ms`).join('; '),
      pass: stampedes.every((s) => s.refreshes === 1 && s.ok === s.calls && s.distinctTokens === 1),
      gated: false,
    },
    {
      id: '6',
      text: 'cold start: spawn to health SERVING < 1 s (local dependencies)',
      measured: `file: secrets median ${median(coldFile.map((c) => c.ms)).toFixed(0)} ms, max ${Math.max(...coldFile.map((c) => c.ms)).toFixed(0)} ms (${coldFile.length} starts); local Secret Manager ${coldSm.map((c) => c.ms.toFixed(0)).join(', ')} ms`,
      pass: coldOk,
      gated: false,
    },
    memoryTarget(memory, Number(info.nproc), readMemoryOnlyRun()),
    ...exchangeTargets(exchange),
  ];

  const results: BenchResults = {
    machine: info,
    settings: { ...SETTINGS, requestsPerRun: requests, frameBytes, requestFrameBytes: body.length, authorizationBytes: authorization.length },
    cases,
    targets,
    pairs: pairs.map((p) => ({ echoRps: p.echo.rps, brokerRps: p.broker.rps, ratio: p.ratio, echoP99Ms: p.echo.p99Us / 1000, brokerP99Ms: p.broker.p99Us / 1000, p99Ratio: p.p99Ratio })),
    hotPath,
    logging: variants?.logging,
    machineLoad: { load1AtStart: loadAtStart, load1AtEnd: load1(), duringPairs: machineDuringPairs },
    naive: { rps: naiveRun.rps, p50Ms: naiveRun.p50Us / 1000, p99Ms: naiveRun.p99Us / 1000, requests: naiveRequests },
    exchange,
    stampedes,
    coldStarts: bench.coldStarts,
    memory,
    diagnosis,
    invalidRuns: bench.invalidRuns,
    durationSeconds: round((performance.now() - wallStart) / 1000, 1),
    buildSeconds: round(buildS, 1),
  };
  const markdown = renderMarkdown(results);
  writeFileSync(path.join(OUT_DIR, 'latest.md'), markdown);
  writeFileSync(path.join(OUT_DIR, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(OUT_DIR, 'latest.svg'), renderSvg(results));
  say('');
  say(markdown);
  say(`written: ${path.join(OUT_DIR, 'latest.md')}, latest.json, latest.svg`);

  if (bench.invalidRuns.length > 0) {
    say(`INVALID: ${bench.invalidRuns.length} run(s) did not measure what they claim:\n  ${bench.invalidRuns.join('\n  ')}`);
    return 1;
  }
  const gatedMisses = targets.filter((t) => t.gated && !t.pass).map((t) => t.id);
  if (gatedMisses.length > 0) {
    say(`FAIL: gated target(s) ${gatedMisses.join(', ')} missed.`);
    return 1;
  }
  say('PASS: gated targets 1, 2 and 3 met.');
  return 0;
}

/** What {@link variantRounds} needs of the main run. */
interface VariantInputs {
  echoTarget: LoadTarget;
  brokerTarget: LoadTarget;
  target: (name: string, server: { port: number; child: ManagedChild }) => LoadTarget;
  /** Requests per loaded run of the paired comparison. */
  requests: number;
  single: LoadShape;
  unloaded: Array<{ echo: LoadResult; broker: LoadResult }>;
  signInUsers: (b: BrokerProcess, count: number) => Promise<string[]>;
  /** A loaded run of the broker under test, counted towards target 3's calls. */
  brokerRun: (shape: LoadShape) => Promise<LoadResult>;
}

/**
 * What logging, caller authentication, metrics and the V8 setting each cost
 * the hot path: the same broker with stdout to /dev/null, with log level
 * warn, with caller auth off, without metrics, and with V8's default
 * pretenuring, each against the echo in 3 rounds (about 50 s).
 */
async function variantRounds(bench: Bench, input: VariantInputs): Promise<{ logging: NonNullable<BenchResults['logging']>; loadedCases: CaseRow[]; unloadedCases: CaseRow[] }> {
  const { echoTarget, brokerTarget, target, requests, single, unloaded, signInUsers, brokerRun } = input;
  say("logging, authentication, metrics and V8 settings: the same broker with stdout to /dev/null, with log level warn, with caller auth off, without metrics, and with V8's default pretenuring...");
  const devnull = await bench.startBroker('broker-devnull', { stdout: 'devnull' });
  const quiet = await bench.startBroker('broker-warn', { env: { TOKENBROKER_LOG_LEVEL: 'warn' } });
  // Same requests (the authorization header is sent and ignored), same audit line.
  const open = await bench.startBroker('broker-noauth', { env: { TOKENBROKER_CALLER_AUTH: 'insecure-none' } });
  // An empty setting is an unset one: no metrics port, nothing recorded.
  const unmetered = await bench.startBroker('broker-nometrics', { env: { TOKENBROKER_METRICS_PORT: '' } });
  // What the broker's V8 setting is worth: V8's default restored on the command line.
  const pretenuring = await bench.startBroker('broker-v8default', { nodeArgs: ['--allocation-site-pretenuring'] });
  const others = [
    { key: 'devnull', broker: devnull },
    { key: 'warn', broker: quiet },
    { key: 'noauth', broker: open },
    { key: 'nometrics', broker: unmetered },
    { key: 'v8default', broker: pretenuring },
  ].map((v) => ({ ...v, target: target(v.broker.name, v.broker) }));
  const variants = [{ key: 'pipe', target: brokerTarget }, ...others];
  for (const variant of others) {
    await signInUsers(variant.broker, SETTINGS.seedUsers);
    await probe(variant.target); // first call: the token another instance shared in Firestore
    await bench.load(variant.target, loaded(10_000));
  }
  const logRequests = Math.max(10_000, Math.round(requests * 0.6));
  const logRounds: Array<Record<string, number>> = [];
  const logRuns: Record<string, LoadResult[]> = { echo: [], pipe: [], devnull: [], warn: [], noauth: [], nometrics: [], v8default: [] };
  for (let round = 0; round < 3; round += 1) {
    const e = await bench.load(echoTarget, loaded(logRequests));
    logRuns.echo?.push(e);
    const ratios: Record<string, number> = {};
    for (const variant of variants) {
      const run = variant.key === 'pipe' ? await brokerRun(loaded(logRequests)) : await bench.load(variant.target, loaded(logRequests));
      logRuns[variant.key]?.push(run);
      ratios[variant.key] = run.rps / e.rps;
    }
    logRounds.push(ratios);
  }
  const logRatio = (key: string) => median(logRounds.map((r) => r[key] ?? NaN));
  const unloadedVariants: Record<string, LoadResult> = {};
  for (const variant of others) unloadedVariants[variant.key] = await bench.load(variant.target, single);
  const authCost = median(logRounds.map((r) => (r.pipe ?? NaN) / (r.noauth ?? NaN)));
  const metricsCost = median(logRounds.map((r) => (r.pipe ?? NaN) / (r.nometrics ?? NaN)));
  const v8Setting = median(logRounds.map((r) => (r.pipe ?? NaN) / (r.v8default ?? NaN)));
  say(
    `  vs echo (median of 3 rounds): pipe ${logRatio('pipe').toFixed(3)}, /dev/null ${logRatio('devnull').toFixed(3)}, warn ${logRatio('warn').toFixed(3)}, auth off ${logRatio('noauth').toFixed(3)}, metrics off ${logRatio('nometrics').toFixed(3)}, V8 default ${logRatio('v8default').toFixed(3)}; ` +
      `auth on / auth off ${authCost.toFixed(3)}, metrics on / off ${metricsCost.toFixed(3)}, pretenuring off / on ${v8Setting.toFixed(3)}`,
  );
  for (const variant of others) await variant.broker.child.stop();
  const unloadedEcho = median(unloaded.map((u) => u.echo.rps));
  return {
    logging: {
      rounds: logRounds,
      medianVsEcho: { pipe: logRatio('pipe'), devnull: logRatio('devnull'), warn: logRatio('warn'), noauth: logRatio('noauth'), nometrics: logRatio('nometrics'), v8default: logRatio('v8default') },
      authOnVsOff: authCost,
      metricsOnVsOff: metricsCost,
      pretenuringOffVsOn: v8Setting,
    },
    loadedCases: [
      caseRow('broker-devnull', 'TokenBroker, stdout to /dev/null', logRuns.devnull ?? [], logRatio('devnull')),
      caseRow('broker-warn', 'TokenBroker, log level warn (no audit line)', logRuns.warn ?? [], logRatio('warn')),
      caseRow('broker-noauth', 'TokenBroker, caller auth off (insecure-none), same requests', logRuns.noauth ?? [], logRatio('noauth')),
      caseRow('broker-nometrics', 'TokenBroker, metrics off (TOKENBROKER_METRICS_PORT unset)', logRuns.nometrics ?? [], logRatio('nometrics')),
      caseRow('broker-v8default', "TokenBroker, V8's default pretenuring (--allocation-site-pretenuring)", logRuns.v8default ?? [], logRatio('v8default')),
    ],
    unloadedCases: [
      caseRow('broker-devnull-unloaded', 'TokenBroker, stdout /dev/null, unloaded', unloadedVariants.devnull ? [unloadedVariants.devnull] : [], (unloadedVariants.devnull?.rps ?? NaN) / unloadedEcho),
      caseRow('broker-warn-unloaded', 'TokenBroker, level warn, unloaded', unloadedVariants.warn ? [unloadedVariants.warn] : [], (unloadedVariants.warn?.rps ?? NaN) / unloadedEcho),
    ],
  };
}

function caseRow(key: string, label: string, runs: LoadResult[], vsEcho: number | undefined): CaseRow {
  return {
    key,
    label,
    runs: runs.length,
    rps: median(runs.map((r) => r.rps)),
    p50Ms: median(runs.map((r) => r.p50Us)) / 1000,
    p99Ms: median(runs.map((r) => r.p99Us)) / 1000,
    vsEcho,
    cpuUsPerCall: median(runs.map((r) => r.serverCpuUsPerCall)),
    mainCpuUsPerCall: median(runs.map((r) => r.serverMainCpuUsPerCall)),
  };
}

/**
 * Sequential sign-ins on an otherwise idle broker, measured two ways.
 *
 * On the wire: end-to-end latency at the client against the union of the
 * intervals the proxies saw the broker wait on Google and Firestore within
 * it. The proxies' own hops would count as ours; they are measured (the
 * same reads and writes through the proxy and directly) and reported both
 * ways. The client libraries' own work (the Firestore client, gaxios)
 * counts as ours here. BENCH_EXCHANGE_WARMUP sign-ins come first.
 *
 * In the broker: its own metrics, scraped after every sign-in, give the
 * handler's time (tokenbroker_rpc_duration_seconds) and the time it spent
 * inside its calls to Google (tokenbroker_upstream_duration_seconds) and
 * Firestore (tokenbroker_firestore_duration_seconds), client libraries
 * included; the difference is the broker's own. The sums are exact only
 * when those calls do not overlap: the proxies' intervals tell.
 *
 * The broker's CPU per sign-in comes from a second series of sign-ins
 * without scrapes (a scrape costs CPU of its own).
 */
async function exchangeBreakdown(stack: BenchStack, broker: BrokerProcess, gateway: TokenBrokerClient, photos: TokenBrokerClient, hotUser: string) {
  say(
    `ExchangeCode breakdown: ${SETTINGS.exchangeWarmup} sign-ins to warm up, then ${SETTINGS.exchangeSamples} sequential ones, the broker's metrics scraped after each, then ${SETTINGS.exchangeSamples} more for its CPU...`,
  );
  const signIn = () => gateway.exchangeCode({ authCode: stack.mintCode(stack.newUser()) }, { timeoutMs: 15_000 });
  await mapLimit(Array.from({ length: SETTINGS.exchangeWarmup }, (_, i) => i), 16, signIn);
  const rows: Array<{
    totalMs: number;
    waitMs: number;
    googleMs: number;
    firestoreMs: number;
    firestoreCalls: number;
    firestoreReads: number;
    googleCalls: number;
    /** Sum of the wire intervals less their union: > 0 when the broker waited on two things at once. */
    overlapMs: number;
    handlerMs: number;
    inGoogleMs: number;
    inFirestoreMs: number;
    handlerCalls: number;
    inFirestoreCalls: number;
    inGoogleCalls: number;
  }> = [];
  const scrape = async () => parseSamples(await httpText(broker.metricsUrl));
  let before = await scrape();
  for (let i = 0; i < SETTINGS.exchangeSamples; i += 1) {
    const fsFrom = stack.firestore.calls.length;
    const gFrom = stack.oauthProxy.calls.length;
    const t0 = performance.now();
    await signIn();
    const t1 = performance.now();
    const after = await scrape();
    const previous = before;
    before = after;
    const grew = (name: string, labels: Record<string, string> = {}) => sumOf(after, name, labels) - sumOf(previous, name, labels);
    const fs = stack.firestore.calls.slice(fsFrom).filter((c) => c.startMs >= t0 && c.endMs <= t1);
    const g = stack.oauthProxy.calls.slice(gFrom).filter((c) => c.startMs >= t0 && c.endMs <= t1);
    const fsIntervals = fs.map((c) => [c.startMs, c.endMs] as const);
    const gIntervals = g.map((c) => [c.startMs, c.endMs] as const);
    const all = [...fsIntervals, ...gIntervals];
    const waitMs = unionLength(all);
    const exchange = { method: 'ExchangeCode', code: 'OK' };
    rows.push({
      totalMs: t1 - t0,
      waitMs,
      googleMs: unionLength(gIntervals),
      firestoreMs: unionLength(fsIntervals),
      firestoreCalls: fs.length,
      firestoreReads: fs.filter((c) => FirestoreProxy.isRead(c.method)).length,
      googleCalls: g.length,
      overlapMs: all.reduce((sum, [start, end]) => sum + (end - start), 0) - waitMs,
      handlerMs: grew('tokenbroker_rpc_duration_seconds_sum', exchange) * 1000,
      inGoogleMs: grew('tokenbroker_upstream_duration_seconds_sum') * 1000,
      inFirestoreMs: grew('tokenbroker_firestore_duration_seconds_sum') * 1000,
      handlerCalls: grew('tokenbroker_rpc_duration_seconds_count', exchange),
      inFirestoreCalls: grew('tokenbroker_firestore_duration_seconds_count'),
      inGoogleCalls: grew('tokenbroker_upstream_duration_seconds_count'),
    });
  }
  const miscounted = rows.filter((r) => r.handlerCalls !== 1).length;
  if (miscounted > 0) throw new Error(`${miscounted} sign-ins did not move the broker's ExchangeCode series by exactly one call`);
  const cpu0 = { main: broker.child.mainThreadCpuMs(), all: broker.child.cpuMs() };
  for (let i = 0; i < SETTINGS.exchangeSamples; i += 1) await signIn();
  const cpu = { main: broker.child.mainThreadCpuMs() - cpu0.main, all: broker.child.cpuMs() - cpu0.all };
  // What one hop through each proxy costs, measured from here: the same call both ways, alternating.
  // Firestore reads (a BatchGetDocuments stream) and writes (a unary Commit) each get their own,
  // sent as the broker sends them (FirestoreDocuments).
  const [fsHost, fsPort] = stack.firestore.host.split(':');
  const viaProxy = FirestoreDocuments.open({ ...stack.emulator.clientSettings(), host: fsHost, port: Number(fsPort) });
  const direct = FirestoreDocuments.open(stack.emulator.clientSettings());
  const hotName = direct.name(stack.collection, hotUser);
  const probeName = direct.name(`${stack.collection}_hop_probe`, 'probe');
  const hops = { read: { proxied: [] as number[], straight: [] as number[] }, write: { proxied: [] as number[], straight: [] as number[] } };
  const httpProxied: number[] = [];
  const httpStraight: number[] = [];
  const certsPath = new URL(stack.google.endpoints.pemCertsUrl).pathname;
  for (let i = 0; i < 120; i += 1) {
    for (const [db, way] of [[viaProxy, 'proxied'], [direct, 'straight']] as const) {
      let t0 = performance.now();
      await db.get(hotName, 15_000);
      if (i >= 20) hops.read[way].push(performance.now() - t0);
      t0 = performance.now();
      await db.commit([{ name: probeName, data: { i } }], 15_000);
      if (i >= 20) hops.write[way].push(performance.now() - t0);
    }
    for (const [base, out] of [[stack.oauthProxy.url, httpProxied], [stack.google.url, httpStraight]] as const) {
      const t0 = performance.now();
      await timedGet(`${base}${certsPath}`);
      if (i >= 20) out.push(performance.now() - t0);
    }
  }
  await Promise.all([viaProxy.close(), direct.close()]);
  const rtt: number[] = [];
  for (let i = 0; i < 200; i += 1) {
    const t0 = performance.now();
    await photos.getAccessToken({ userId: hotUser, scopes: [DRIVE] });
    rtt.push(performance.now() - t0);
  }
  const col = (key: keyof (typeof rows)[number]) => rows.map((r) => r[key]);
  const fsReadHopMs = Math.max(0, median(hops.read.proxied) - median(hops.read.straight));
  const fsWriteHopMs = Math.max(0, median(hops.write.proxied) - median(hops.write.straight));
  const httpHopMs = Math.max(0, median(httpProxied) - median(httpStraight));
  const firestoreCallsPerExchange = median(col('firestoreCalls'));
  const firestoreReadsPerExchange = median(col('firestoreReads'));
  const googleCallsPerExchange = median(col('googleCalls'));
  const overheadP50Ms = quantile(rows.map((r) => r.totalMs - r.waitMs), 0.5);
  const ownMs = rows.map((r) => r.handlerMs - r.inGoogleMs - r.inFirestoreMs);
  const inFirestoreCallsPerExchange = median(col('inFirestoreCalls'));
  const inGoogleCallsPerExchange = median(col('inGoogleCalls'));
  return {
    samples: rows.length,
    totalP50Ms: quantile(col('totalMs'), 0.5),
    totalP99Ms: quantile(col('totalMs'), 0.99),
    waitP50Ms: quantile(col('waitMs'), 0.5),
    googleP50Ms: quantile(col('googleMs'), 0.5),
    firestoreP50Ms: quantile(col('firestoreMs'), 0.5),
    overheadP50Ms,
    overheadP90Ms: quantile(rows.map((r) => r.totalMs - r.waitMs), 0.9),
    firestoreCallsPerExchange,
    googleCallsPerExchange,
    firestoreReadsPerExchange,
    firestoreReadHopMs: fsReadHopMs,
    firestoreWriteHopMs: fsWriteHopMs,
    oauthProxyHopMs: httpHopMs,
    overheadCorrectedP50Ms: Math.max(
      0,
      overheadP50Ms - firestoreReadsPerExchange * fsReadHopMs - (firestoreCallsPerExchange - firestoreReadsPerExchange) * fsWriteHopMs - googleCallsPerExchange * httpHopMs,
    ),
    // In the broker, from its own metrics: the handler's time less the time inside its Google and Firestore calls.
    handlerP50Ms: quantile(col('handlerMs'), 0.5),
    inGoogleP50Ms: quantile(col('inGoogleMs'), 0.5),
    inFirestoreP50Ms: quantile(col('inFirestoreMs'), 0.5),
    inFirestoreCallsPerExchange,
    inGoogleCallsPerExchange,
    ownP50Ms: quantile(ownMs, 0.5),
    ownP90Ms: quantile(ownMs, 0.9),
    /** The client, both gRPC hops and the server's framing: end to end less the handler's time. */
    outsideHandlerP50Ms: quantile(rows.map((r) => r.totalMs - r.handlerMs), 0.5),
    maxWireOverlapMs: Math.max(...col('overlapMs')),
    /** Sign-ins whose scrape window held more or fewer Google or Firestore calls than most (another task's calls would count as waiting). */
    oddCallCountRows: rows.filter((r) => r.inFirestoreCalls !== inFirestoreCallsPerExchange || r.inGoogleCalls !== inGoogleCallsPerExchange).length,
    // The broker's own CPU per sign-in: its event loop cannot answer before this much work is done.
    brokerMainThreadCpuMsPerExchange: cpu.main / SETTINGS.exchangeSamples,
    brokerCpuMsPerExchange: cpu.all / SETTINGS.exchangeSamples,
    cachedGetAccessTokenRttP50Ms: quantile(rtt, 0.5),
  };
}

/**
 * Target 8 both ways: in the broker (its metrics; the client libraries'
 * work inside a Google or Firestore call counts as waiting) and on the wire
 * (the proxies; that work counts as ours). Neither is gated.
 */
function exchangeTargets(exchange: Awaited<ReturnType<typeof exchangeBreakdown>>): TargetRow[] {
  const overlapped = exchange.maxWireOverlapMs > 0.05;
  const odd = exchange.oddCallCountRows > 0;
  const warnings = [
    ...(overlapped ? [`WARNING: calls overlapped by up to ${exchange.maxWireOverlapMs.toFixed(2)} ms, so the broker's sums overstate waiting`] : []),
    ...(odd ? [`WARNING: ${exchange.oddCallCountRows} sign-ins saw other Google or Firestore calls than most, which may not be theirs`] : []),
  ];
  const overlap = warnings.map((w) => `; ${w}`).join('');
  return [
    {
      id: '8a',
      text: 'ExchangeCode adds <= 3 ms at p50 beyond waiting on Google and Firestore, in the broker (its metrics: time inside a client library call counts as waiting)',
      measured:
        `${exchange.ownP50Ms.toFixed(2)} ms p50, ${exchange.ownP90Ms.toFixed(2)} ms p90 (handler ${exchange.handlerP50Ms.toFixed(2)} ms, in Google ${exchange.inGoogleP50Ms.toFixed(2)} ms, in Firestore ${exchange.inFirestoreP50Ms.toFixed(2)} ms over ${exchange.inFirestoreCallsPerExchange} operations)${overlap}`,
      pass: exchange.ownP50Ms <= TARGETS.exchangeOverheadMs && !overlapped && !odd,
      gated: false,
    },
    {
      id: '8b',
      text: 'the same on the wire (the proxies: the client libraries\' work counts as ours, as do the client and the gRPC hops)',
      measured:
        `${exchange.overheadCorrectedP50Ms.toFixed(2)} ms p50 less the proxies' own hops, ${exchange.overheadP50Ms.toFixed(2)} ms as measured (end to end ${exchange.totalP50Ms.toFixed(2)} ms, waiting ${exchange.waitP50Ms.toFixed(2)} ms); ` +
        `broker CPU per sign-in ${exchange.brokerMainThreadCpuMsPerExchange.toFixed(1)} ms on its event loop, ${exchange.brokerCpuMsPerExchange.toFixed(1)} ms all threads`,
      pass: exchange.overheadCorrectedP50Ms <= TARGETS.exchangeOverheadMs,
      gated: false,
    },
  ];
}

/** The body of a GET of `url`, as text; rejects on a status other than 200. */
function httpText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${url}: HTTP ${res.statusCode}`))));
    }).on('error', reject);
  });
}

function timedGet(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      res.resume();
      res.on('end', () => resolve());
    }).on('error', reject);
  });
}

/** Two starts of the broker reading its secrets from the local Secret Manager instead of files. */
async function secretManagerColdStarts(bench: Bench): Promise<void> {
  const secretManager = await LocalSecretManagerServer.start({
    secrets: {
      [`projects/${PROJECT}/secrets/oauth-client`]: JSON.stringify({ installed: { client_id: SERVER_CLIENT_ID, client_secret: bench.stack.clientSecret } }),
      [`projects/${PROJECT}/secrets/keyset`]: readFileSync(bench.stack.keysetFile, 'utf8'),
    },
  });
  cleanup.push(() => secretManager.close());
  for (let i = 0; i < 2; i += 1) {
    const b = await bench.startBroker(`broker-sm-${i + 1}`, {
      env: {
        TOKENBROKER_OAUTH_CLIENT_SECRET: `projects/${PROJECT}/secrets/oauth-client/versions/latest`,
        TOKENBROKER_ENCRYPTION_KEYSET: `projects/${PROJECT}/secrets/keyset/versions/1`,
        TOKENBROKER_SECRET_MANAGER_ENDPOINT: `${secretManager.host}:${secretManager.port}`,
      },
    });
    await b.child.stop();
  }
  await secretManager.close();
}

/**
 * The child's count of token_issued lines once it has reached `expected`
 * (or 10 s have passed), read 300 ms after that so lines beyond it are
 * counted too: the count is then exact however far the bench's reading of
 * the pipe lags behind.
 */
async function auditLinesReach(child: ManagedChild, expected: number): Promise<number> {
  const until = performance.now() + 10_000;
  while (child.tokenIssuedLines < expected && performance.now() < until) await sleep(20);
  await sleep(300);
  return child.tokenIssuedLines;
}

/**
 * A fresh broker (production settings, talking to the emulator and the OAuth
 * server directly) gets users signed in through ExchangeCode, BENCH_MEMORY_CONCURRENCY at a time,
 * until BENCH_MEMORY_USERS or BENCH_MEMORY_SECONDS, without a pause: its RSS
 * is read from /proc every 250 ms meanwhile, and the growth per user is the
 * least-squares slope of those samples over the upper part of the curve. A
 * full GC (the process runs with --expose-gc and a preload that only answers
 * SIGUSR2 with gc() and process.memoryUsage()) happens only before the first
 * of those sign-ins and after the last: one in between gives back memory the
 * running process keeps (about 100 MB here), which then grows back over the
 * next few thousand sign-ins and would bend the curve where it falls.
 */
async function memoryCurve(bench: Bench, gatewayToken: string, seconds: number): Promise<BenchResults['memory']> {
  say(`memory: a fresh broker, sign-ins through ExchangeCode up to ${SETTINGS.memoryUsers} users or ${seconds.toFixed(0)} s...`);
  const preload = path.join(bench.workDir, 'gc-on-sigusr2.js');
  writeFileSync(
    preload,
    [
      "'use strict';",
      "process.on('SIGUSR2', () => {",
      '  global.gc(); global.gc();',
      '  const m = process.memoryUsage();',
      "  require('fs').writeSync(1, JSON.stringify({ event: 'bench_memory', rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external }) + '\\n');",
      '});',
      '',
    ].join('\n'),
  );
  // The curve's ID tokens are signed with a 1024-bit key: the local Google's 2048-bit RSA signature
  // costs the bench 0.3-0.5 ms per sign-in, a tenth of the machine's CPU per sign-in here, and
  // this phase is short of CPU. The broker's check of the smaller key is about 15 µs cheaper. The
  // 2048-bit key stays published (the callers' tokens carry it); later sign-ins get the 1024-bit one.
  bench.stack.google.rotateSigningKeys(1024);
  const memBroker = await bench.stack.startBroker('broker-memory', {
    direct: true,
    env: { TOKENBROKER_MAX_CACHED_USERS: String(SETTINGS.memoryMaxCachedUsers) },
    nodeArgs: [...SETTINGS.memoryNodeArgs.split(' ').filter((a) => a !== ''), '--expose-gc', '--require', preload],
  });
  cleanup.push(() => memBroker.child.stop());
  // The sign-ins go over plain node:http2 (one connection, as a grpc-js channel would use): the bench's
  // own CPU per call is a fraction of grpc-js's, and this phase is short of CPU, not of anything else.
  const session = await openSession(memBroker.port, 5000);
  cleanup.push(async () => session.close());
  const gatewayHeaders = grpcHeaders(`Bearer ${gatewayToken}`);
  const signIn = async (): Promise<string> => {
    const request = ExchangeCodeRequest.encode({ authCode: bench.stack.mintCode(bench.stack.newUser()), redirectUri: '' }).finish();
    const reply = await rawUnary(session, EXCHANGE_CODE_PATH, frame(request), gatewayHeaders, 30_000);
    const message = unframe(reply.data);
    if (reply.grpcStatus !== 0 || !message) throw new Error(`ExchangeCode answered grpc-status ${reply.grpcStatus}`);
    return ExchangeCodeResponse.decode(message).userId;
  };
  const photos = SETTINGS.memoryServed ? bench.stack.clientAs(memBroker, bench.stack.callerToken(PHOTOS)) : undefined;
  if (photos) cleanup.push(() => photos.close());
  const started = performance.now();
  const budgetEnd = started + seconds * 1000;
  let seeded = 0;
  let seedErrors = 0;
  const seed = (users: number) =>
    mapLimit(Array.from({ length: users }, (_, i) => i), SETTINGS.memoryConcurrency, async () => {
      if (performance.now() > budgetEnd) return;
      try {
        const userId = await signIn();
        if (photos) {
          // The first call refreshes a token for the scope, the second is a cache hit (which keeps its encoded response).
          await photos.getAccessToken({ userId, scopes: [DRIVE] }, { timeoutMs: 30_000 });
          await photos.getAccessToken({ userId, scopes: [DRIVE] }, { timeoutMs: 30_000 });
        }
        seeded += 1;
      } catch {
        seedErrors += 1;
      }
    });
  const settled = async (): Promise<BenchResults['memory']['ends'][number]> => {
    await sleep(300);
    const rssKiB = memBroker.child.rssKiB();
    const line = memBroker.child.waitForLine((l) => l.includes('"bench_memory"'), 30_000);
    memBroker.child.signal('SIGUSR2');
    const m = JSON.parse(await line) as { rss: number; heapUsed: number; heapTotal: number; external: number };
    const end = { users: seeded, rssKiB, gcRssKiB: m.rss / 1024, heapUsedKiB: m.heapUsed / 1024, heapTotalKiB: m.heapTotal / 1024, externalKiB: m.external / 1024 };
    say(`  ${seeded} users, settled: RSS ${(rssKiB / 1024).toFixed(1)} MiB, after GC ${(m.rss / 1048576).toFixed(1)} MiB (heap used ${(m.heapUsed / 1048576).toFixed(1)} MiB)`);
    return end;
  };
  // A few hundred sign-ins first, so the curve starts from warmed-up code and open connections.
  await seed(Math.min(300, SETTINGS.memoryUsers));
  const first = await settled();
  const trace: BenchResults['memory']['trace'] = [];
  const seedingFrom = performance.now();
  const cpuFrom = { machine: machineCpu(), broker: memBroker.child.cpuMs(), emulator: processGroupCpuMs(bench.stack.emulator.pgid) };
  const sampleRss = () => trace.push({ users: seeded, rssKiB: memBroker.child.rssKiB(), seconds: (performance.now() - started) / 1000 });
  const poller = setInterval(sampleRss, 250);
  cleanup.push(async () => clearInterval(poller));
  const progress = setInterval(() => say(`  ${seeded} users, RSS ${((trace.at(-1)?.rssKiB ?? 0) / 1024).toFixed(1)} MiB, ${((performance.now() - started) / 1000).toFixed(0)} s`), 20_000);
  cleanup.push(async () => clearInterval(progress));
  await seed(SETTINGS.memoryUsers - seeded);
  clearInterval(poller);
  sampleRss();
  clearInterval(progress);
  const seedingS = (performance.now() - seedingFrom) / 1000;
  const cpuTo = { machine: machineCpu(), broker: memBroker.child.cpuMs(), emulator: processGroupCpuMs(bench.stack.emulator.pgid) };
  // Sign-ins between the ends (at least 1, so a curve that got none divides into no infinities).
  const signedIn = Math.max(1, seeded - first.users);
  const signInCpu = {
    brokerMs: (cpuTo.broker - cpuFrom.broker) / signedIn,
    emulatorMs: (cpuTo.emulator - cpuFrom.emulator) / signedIn,
    machineMs: (cpuTo.machine.busyMs - cpuFrom.machine.busyMs) / signedIn,
    stealCoreS: (cpuTo.machine.stealMs - cpuFrom.machine.stealMs) / 1000,
  };
  const last = await settled();
  session.close();
  photos?.close();
  await memBroker.child.stop();
  // The upper part of the curve: early growth is the heap and code warming up, not users.
  const fitFromUsers = Math.max(first.users, Math.round(seeded / 4));
  const fitted = trace.filter((p) => p.users >= fitFromUsers);
  const checkpoints = [1000, 2500, 5000, 10_000, 20_000, 30_000, 50_000, 75_000, 100_000, seeded].filter((n) => n > first.users && n <= seeded);
  const curve = [...new Set(checkpoints)].flatMap((n) => trace.find((p) => p.users >= n) ?? []);
  const result = {
    curve,
    ends: [first, last],
    trace,
    served: SETTINGS.memoryServed === 1,
    maxCachedUsers: SETTINGS.memoryMaxCachedUsers,
    concurrency: SETTINGS.memoryConcurrency,
    seedErrors,
    usersReached: seeded,
    seedRatePerS: signedIn / seedingS,
    signInCpu,
    fitFromUsers,
    traceSamples: fitted.length,
    bytesPerUser: linearFit(fitted.map((p) => ({ x: p.users, y: p.rssKiB * 1024 }))).slope,
    settledBytesPerUser: ((last.rssKiB - first.rssKiB) * 1024) / signedIn,
    gcBytesPerUser: ((last.gcRssKiB - first.gcRssKiB) * 1024) / signedIn,
    heapBytesPerUser: ((last.heapUsedKiB - first.heapUsedKiB) * 1024) / signedIn,
  };
  say(
    `  per cached user: ${result.bytesPerUser.toFixed(0)} B RSS (least squares over ${result.traceSamples} samples from ${fitFromUsers} users on); ` +
      `from ${first.users} users settled to ${last.users} settled: ${result.settledBytesPerUser.toFixed(0)} B RSS, ${result.gcBytesPerUser.toFixed(0)} B RSS after a full GC, ` +
      `${result.heapBytesPerUser.toFixed(0)} B JS heap; ${result.seedRatePerS.toFixed(0)} sign-ins/s, ` +
      `each ${signInCpu.machineMs.toFixed(2)} ms of the machine's CPU (broker ${signInCpu.brokerMs.toFixed(2)}, Firestore emulator ${signInCpu.emulatorMs.toFixed(2)})`,
  );
  return result;
}

const MEMORY_TARGET_TEXT = 'resident memory growth per cached user <= 1 KB at 100,000 users';

/** Target 7's verdict on a curve: undefined when it stopped short of 100,000 users. */
function memoryVerdict(memory: Pick<BenchResults['memory'], 'usersReached' | 'bytesPerUser' | 'seedErrors'>): boolean | undefined {
  if (memory.usersReached < 100_000) return undefined;
  return memory.bytesPerUser <= TARGETS.bytesPerUser && memory.seedErrors === 0;
}

/**
 * Target 7 from a curve. `nproc` turns the CPU per sign-in into the time
 * 100,000 sign-ins take a run that stopped short; `memoryOnly`, the reading
 * of the last memory-only run, goes beside such a verdict-less row.
 */
function memoryTarget(memory: BenchResults['memory'], nproc: number, memoryOnly?: MemoryOnlyReading): TargetRow {
  if (memory.maxCachedUsers < memory.usersReached) {
    return {
      id: '7',
      text: MEMORY_TARGET_TEXT,
      measured: `${memory.bytesPerUser.toFixed(0)} B RSS per user signed in, slope from ${memory.fitFromUsers} to ${memory.usersReached} users, with at most ${memory.maxCachedUsers} cached`,
      pass: undefined,
      noVerdict: 'control run',
      gated: false,
    };
  }
  const measured =
    `${memory.bytesPerUser.toFixed(0)} B/user RSS, slope from ${memory.fitFromUsers} to ${memory.usersReached} users (${memory.traceSamples} samples during the sign-ins); ` +
    `settled ends ${memory.settledBytesPerUser.toFixed(0)}, after a full GC ${memory.gcBytesPerUser.toFixed(0)}, JS heap ${memory.heapBytesPerUser.toFixed(0)}`;
  const pass = memoryVerdict(memory);
  if (pass !== undefined) return { id: '7', text: MEMORY_TARGET_TEXT, measured, pass, gated: false };
  const cpu = memory.signInCpu;
  const fullCurveS = (100_000 * cpu.machineMs) / 1000 / nproc;
  return {
    id: '7',
    text: MEMORY_TARGET_TEXT,
    measured:
      `${measured}; 100,000 not reached in this run (${memory.seedRatePerS.toFixed(0)} sign-ins/s, each ${cpu.machineMs.toFixed(1)} ms of the machine's CPU, of it broker ${cpu.brokerMs.toFixed(1)} and emulator ${cpu.emulatorMs.toFixed(1)}: ` +
      `100,000 take about ${fullCurveS.toFixed(0)} s of all ${nproc} cores by themselves); BENCH_ONLY=memory measures the whole curve` +
      (memoryOnly ? `; ${memoryOnly.text}` : ''),
    pass: undefined,
    noVerdict: memoryOnly?.pass === undefined ? undefined : `not reached (memory-only run: ${memoryOnly.pass ? 'PASS' : 'MISS'})`,
    gated: false,
  };
}

/** What the last memory-only run (memory.json beside this run's report) measured; its verdict when it reached 100,000 users. */
interface MemoryOnlyReading {
  text: string;
  pass: boolean | undefined;
}

function readMemoryOnlyRun(): MemoryOnlyReading | undefined {
  let saved: { machine?: { date?: unknown }; memory?: Partial<BenchResults['memory']> };
  try {
    saved = JSON.parse(readFileSync(path.join(OUT_DIR, 'memory.json'), 'utf8')) as typeof saved;
  } catch {
    return undefined; // none yet, or not readable: the row says what this run measured, and no more
  }
  const { machine, memory } = saved;
  if (typeof machine?.date !== 'string' || typeof memory?.usersReached !== 'number' || typeof memory.bytesPerUser !== 'number' || typeof memory.fitFromUsers !== 'number') return undefined;
  const run = `the latest memory-only run (memory.md, ${machine.date.slice(0, 16).replace('T', ' ')} UTC)`;
  const pass = memoryVerdict({ usersReached: memory.usersReached, bytesPerUser: memory.bytesPerUser, seedErrors: memory.seedErrors ?? NaN });
  if (pass === undefined) return { text: `${run} reached ${memory.usersReached} users`, pass };
  return { text: `${run}: ${memory.bytesPerUser.toFixed(0)} B/user RSS, slope from ${memory.fitFromUsers} to ${memory.usersReached} users, ${pass ? 'PASS' : 'MISS'}`, pass };
}

/** BENCH_ONLY=memory: the memory curve alone, for a long run to 100,000 users. */
async function memoryOnly(bench: Bench, info: ReturnType<typeof machine>, wallStart: number): Promise<number> {
  const memory = await memoryCurve(bench, bench.stack.callerToken(GATEWAY), SETTINGS.memorySeconds);
  const target = memoryTarget(memory, Number(info.nproc));
  // Users in use and control runs get reports of their own, so the curve of signed-in users stays beside them.
  const kind = SETTINGS.memoryServed === 1 ? 'served' : memory.maxCachedUsers < memory.usersReached ? 'control' : undefined;
  const title = { served: 'memory curve of users in use', control: 'memory curve, control run (cache held small)' };
  writePhaseReport(kind ? `memory-${kind}` : 'memory', kind ? title[kind] : 'memory curve', info, wallStart, [
    renderMemory(memory),
    `Target 7: ${target.measured}: ${target.pass === undefined ? (target.noVerdict ?? 'not reached').toUpperCase() : target.pass ? 'PASS' : 'MISS'}`,
    '',
  ], { memory });
  return 0;
}

/**
 * Writes the report of a BENCH_ONLY run, `<name>.md` (a heading, the machine,
 * then `body`) and `<name>.json` (the machine and `data`), and prints it.
 */
function writePhaseReport(name: string, title: string, info: ReturnType<typeof machine>, wallStart: number, body: string[], data: Record<string, unknown>): void {
  const markdown = [
    `### TokenBroker ${title}, ${info.date.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Machine: \`nproc\` ${info.nproc}, ${info.cpuModel}, Node ${info.node}. Whole run ${((performance.now() - wallStart) / 1000).toFixed(0)} s.`,
    '',
    ...body,
  ].join('\n');
  writeFileSync(path.join(OUT_DIR, `${name}.md`), markdown);
  writeFileSync(path.join(OUT_DIR, `${name}.json`), `${JSON.stringify({ machine: info, ...data }, null, 2)}\n`);
  say('');
  say(markdown);
}

/** For the ExchangeCode profile: whose work each sample is, first match on the stack wins. */
const EXCHANGE_STACK_RULES = [
  { name: 'Firestore client (@google-cloud/firestore, google-gax)', url: /@google-cloud\/firestore|google-gax/ },
  { name: 'Google token request and ID-token check (google-auth-library, gaxios)', url: /google-auth-library|gaxios|node-fetch/ },
  { name: 'logging (pino)', url: /pino|sonic-boom/ },
  { name: 'TokenBroker code', url: /\/dist\// },
  { name: 'grpc-js server side', url: /grpc-js\/build\/src\/server/ },
  { name: 'grpc-js client side (Firestore calls, continued)', url: /grpc-js/ },
  { name: 'protobufjs (Firestore messages, continued)', url: /protobufjs/ },
];

/**
 * BENCH_ONLY=exchange: target 8 alone, on a broker set up as in the full run,
 * with BENCH_PROFILE=1 under `node --cpu-prof` (the profile cut to the measured
 * sign-ins). Writes exchange.md and exchange.json.
 */
async function exchangeOnly(bench: Bench, info: ReturnType<typeof machine>, wallStart: number): Promise<number> {
  const { stack } = bench;
  const profileDir = path.join(bench.workDir, 'exchange-profile');
  const profiled = SETTINGS.profile === '1';
  if (profiled) mkdirSync(profileDir);
  const broker = await bench.startBroker('broker', profiled ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {});
  const gateway = stack.clientAs(broker, stack.callerToken(GATEWAY));
  const photos = stack.clientAs(broker, stack.callerToken(PHOTOS));
  cleanup.push(() => {
    gateway.close();
    photos.close();
  });
  // Warm-up: the first sign-ins load code and open connections.
  let hotUser = '';
  for (let i = 0; i < 20; i += 1) hotUser = (await gateway.exchangeCode({ authCode: stack.mintCode(stack.newUser()) }, { timeoutMs: 15_000 })).userId;
  await photos.getAccessToken({ userId: hotUser, scopes: [DRIVE] }, { timeoutMs: 15_000 });
  const from = performance.now() - broker.spawnedAt;
  const exchange = await exchangeBreakdown(stack, broker, gateway, photos, hotUser);
  const window = { fromMs: from, toMs: performance.now() - broker.spawnedAt };
  await broker.child.stop();
  let profileLines: string[] = [];
  const file = profiled ? readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile')) : undefined;
  if (file) {
    const copy = path.join(OUT_DIR, 'exchange.cpuprofile');
    copyFileSync(path.join(profileDir, file), copy);
    const summary = summarizeProfile(copy, [], window, 30);
    const byStack = attributeByStack(copy, EXCHANGE_STACK_RULES, window);
    profileLines = [
      `Broker CPU profile over the measured sign-ins (node --cpu-prof, ${summary.busyMs.toFixed(0)} ms busy; the window also holds the metrics scrapes after each sign-in, the proxy-hop reads and 200 cached GetAccessToken calls):`,
      '',
      '| % of busy | whose code is on the stack |',
      '|---:|---|',
      ...byStack.slice(0, 15).map((r) => `| ${r.percent.toFixed(1)} | ${r.name} |`),
      '',
      '| self % | area |',
      '|---:|---|',
      ...summary.areas.map((r) => `| ${r.percent.toFixed(1)} | ${r.name} |`),
      '',
      '| self % | function |',
      '|---:|---|',
      ...summary.self.map((r) => `| ${r.percent.toFixed(1)} | \`${r.name}\` |`),
      '',
    ];
  }
  writePhaseReport('exchange', 'ExchangeCode overhead', info, wallStart, [
    renderExchange(exchange),
    '',
    ...exchangeTargets(exchange).map((t) => `Target ${t.id}: ${t.measured}: ${t.pass ? 'PASS' : 'MISS'}`),
    '',
    ...profileLines,
  ], { exchange });
  return 0;
}

/**
 * Where a target is missed: the service under `node --cpu-prof` (and
 * --trace-gc, for allocation per call, against the echo under the same
 * load), loaded as in the main comparison; and a profiled start-up.
 */
async function diagnose(
  bench: Bench,
  input: {
    body: Buffer;
    authorization: string;
    frameBytes: number;
    response: GetAccessTokenResponse;
    requests: number;
    /** Signs in users through a broker, as before every measured run. */
    signInUsers: (b: BrokerProcess, count: number) => Promise<string[]>;
    hotPath: boolean;
    startup: boolean;
  },
): Promise<Diagnosis> {
  const diagnosis: Diagnosis = {};
  if (input.hotPath) {
    say('profiling the hot path (node --cpu-prof --trace-gc on the service, --trace-gc on the echo)...');
    const dir = path.join(bench.workDir, 'cpu-profile');
    mkdirSync(dir);
    const profiled = await bench.startBroker('broker-profiled', { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--trace-gc'] });
    const brokerGc = new GcTrace(profiled.child);
    const echo = await startServer('echo', echoEnv(input.response), ['--trace-gc']);
    const echoGc = new GcTrace(echo.child);
    const mk = (name: string, port: number): LoadTarget => ({ name, port, path: GET_ACCESS_TOKEN_PATH, body: input.body, authorization: input.authorization, frameBytes: [input.frameBytes, input.frameBytes] });
    const bt = mk('broker-profiled', profiled.port);
    const et = mk('echo-traced', echo.port);
    // The history of every broker measured under load (see signInUsers).
    await input.signInUsers(profiled, SETTINGS.seedUsers);
    await probe(bt);
    await bench.load(bt, loaded(10_000));
    await bench.load(et, loaded(10_000));
    const alloc: Record<string, { bytesPerCall: number; gcPauseMsPer10k: number }> = {};
    // Runs of the main comparison are short; a profile wants a few seconds of samples.
    const profiledRequests = Math.max(40_000, input.requests);
    let window = { fromMs: 0, toMs: Infinity };
    for (const [key, t, gc] of [['broker', bt, brokerGc], ['echo', et, echoGc]] as const) {
      const mark = gc.mark();
      const from = performance.now() - profiled.spawnedAt;
      await bench.load(t, loaded(profiledRequests));
      if (key === 'broker') window = { fromMs: from, toMs: performance.now() - profiled.spawnedAt };
      await sleep(200);
      const s = gc.since(mark);
      alloc[key] = { bytesPerCall: s.allocatedBytes / profiledRequests, gcPauseMsPer10k: (s.pauseMs / profiledRequests) * 10_000 };
    }
    await echo.child.stop();
    await profiled.child.stop();
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file) {
      const copy = path.join(OUT_DIR, 'hot-path.cpuprofile');
      copyFileSync(path.join(dir, file), copy);
      // Only the samples of the measured run: start-up and warm-up left out.
      diagnosis.hotPath = summarizeProfile(
        copy,
        [/^admit$/, /^admitNow$/, /^cachedAccessToken$/, /^authenticate$/, /^getAccessToken$/, /^answerBy$/, /^credentialsOf$/, /^LOG$/, /^writeSync$/, /^asJson$/, /^scopesFor$/, /^_channelzHandler$/, /^track$/],
        window,
      );
    }
    diagnosis.allocation = alloc;
    say(`  allocated per call: broker ${alloc.broker?.bytesPerCall.toFixed(0)} B, echo ${alloc.echo?.bytesPerCall.toFixed(0)} B (--trace-gc)`);
  }
  if (input.startup) {
    say('profiling a cold start (node --cpu-prof, stopped once SERVING)...');
    const dir = path.join(bench.workDir, 'startup-profile');
    mkdirSync(dir);
    const b = await bench.startBroker('broker-startup-profiled', { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
    await b.child.stop();
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file) {
      const copy = path.join(OUT_DIR, 'startup.cpuprofile');
      copyFileSync(path.join(dir, file), copy);
      diagnosis.startup = { ...moduleLoadCosts(copy), spawnToServingMs: b.coldStartMs };
    }
  }
  return diagnosis;
}

let finished = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (finished) return;
    finished = true;
    say(`\n${signal}: stopping everything the bench started...`);
    void cleanup.run(say).finally(() => process.exit(130));
  });
}

main()
  .then(
    (code) => code,
    (err: unknown) => {
      say(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return 1;
    },
  )
  .then(async (code) => {
    finished = true;
    await cleanup.run(say);
    process.exit(code);
  });
