/** The bench's outputs: the markdown table printed and saved, and a hand-written SVG chart. */
import type { ProfileRow, ProfileSummary } from './cpu-profile';
import type { FirestoreCounts } from './firestore-proxy';

/** One measured case (a server under one kind of load). */
export interface CaseRow {
  key: string;
  label: string;
  runs: number;
  /** Medians over the runs. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Throughput relative to the echo of the same run (median of paired ratios where paired). */
  vsEcho: number | undefined;
  /** The server's CPU per call (median over runs), all threads and event loop only, µs. */
  cpuUsPerCall: number;
  mainCpuUsPerCall: number;
}

/** One target of the issue and its verdict. */
export interface TargetRow {
  id: string;
  text: string;
  measured: string;
  /** undefined: no verdict (not measured far enough, or a control run). */
  pass: boolean | undefined;
  /** Why there is no verdict, when not "not reached". */
  noVerdict?: string;
  /** Decides the bench's exit code. */
  gated: boolean;
}

/** What the profiling runs found (only when a target was missed, or BENCH_PROFILE=1). */
export interface Diagnosis {
  hotPath?: ProfileSummary;
  /** Bytes allocated per call and GC pause per 10k calls under the same load, from --trace-gc. */
  allocation?: Record<string, { bytesPerCall: number; gcPauseMsPer10k: number }>;
  startup?: { busyMs: number; rows: ProfileRow[]; spawnToServingMs: number };
}

export interface MemoryResult {
  /** At each checkpoint, the first RSS sample taken with that many users or more. */
  curve: Array<{ users: number; rssKiB: number; seconds: number }>;
  /** RSS from /proc every 250 ms while sign-ins ran. */
  trace: Array<{ users: number; rssKiB: number; seconds: number }>;
  /** Before the first traced sign-in and after the last, 300 ms after the sign-ins stopped: RSS, then the process after a full GC. */
  ends: Array<{ users: number; rssKiB: number; gcRssKiB: number; heapUsedKiB: number; heapTotalKiB: number; externalKiB: number }>;
  /** Each user was also served a drive.readonly token twice (BENCH_MEMORY_SERVED=1). */
  served: boolean;
  /** The broker's bound on cached users (BENCH_MEMORY_MAX_CACHED_USERS); below `usersReached`, a control run. */
  maxCachedUsers: number;
  usersReached: number;
  seedErrors: number;
  seedRatePerS: number;
  /**
   * CPU per sign-in between the ends, in ms: the broker's (all its threads),
   * the Firestore emulator's and the whole machine's (every core: the local
   * Google and the bench included); steal is the hypervisor's meanwhile, in
   * core-s.
   */
  signInCpu: { brokerMs: number; emulatorMs: number; machineMs: number; stealCoreS: number };
  /** Sign-ins in flight at once (48 in runs before this field). */
  concurrency?: number;
  /** The slope is fitted to the samples from this many users on. */
  fitFromUsers: number;
  traceSamples: number;
  /** Target 7's number: the least-squares slope of RSS over users. */
  bytesPerUser: number;
  /** Between the two ends: RSS, RSS after a full GC, JS heap in use after a full GC. */
  settledBytesPerUser: number;
  gcBytesPerUser: number;
  heapBytesPerUser: number;
}

export interface BenchResults {
  machine: { nproc: string; cpuModel: string; node: string; h2load: string; date: string };
  settings: Record<string, number | string>;
  cases: CaseRow[];
  targets: TargetRow[];
  pairs: Array<{ echoRps: number; brokerRps: number; ratio: number; echoP99Ms: number; brokerP99Ms: number; p99Ratio: number }>;
  hotPath: { brokerCalls: number; auditLines: number; oauthRequests: number; oauthProxied: number; firestoreReads: number; firestoreCalls: number; firestoreByMethod: FirestoreCounts };
  /** authOnVsOff, metricsOnVsOff: median over the rounds of (on req/s) / (off req/s). Absent when the variants did not run (BENCH_VARIANTS). */
  logging?: { rounds: Array<Record<string, number>>; medianVsEcho: Record<string, number>; authOnVsOff: number; metricsOnVsOff: number; pretenuringOffVsOn: number };
  naive: { rps: number; p50Ms: number; p99Ms: number; requests: number };
  exchange: Record<string, number>;
  stampedes: Array<{ scopes: string[]; calls: number; ok: number; errors: Record<string, number>; distinctTokens: number; refreshes: number; firestoreCalls: number; ms: number }>;
  coldStarts: Array<{ name: string; secrets: string; ms: number }>;
  memory: MemoryResult;
  machineLoad: {
    load1AtStart: number;
    load1AtEnd: number;
    duringPairs: { wallS: number; busyCoreS: number; knownCoreS: number; otherCoreS: number; stealCoreS: number };
  };
  diagnosis: Diagnosis | undefined;
  invalidRuns: string[];
  durationSeconds: number;
  /** What `npm run bench` spent before the bench process (the build); 0 when run directly. */
  buildSeconds?: number;
}

const f = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const thousands = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');

export function renderMarkdown(r: BenchResults): string {
  const m = r.machine;
  const lines: string[] = [];
  lines.push(`### TokenBroker benchmark, ${m.date.slice(0, 16).replace('T', ' ')} UTC`);
  lines.push('');
  lines.push(`Machine: \`nproc\` ${m.nproc}, ${m.cpuModel}, Node ${m.node}, ${m.h2load}. Whole run ${f(r.durationSeconds, 0)} s${r.buildSeconds ? `, after ${f(r.buildSeconds, 0)} s of build` : ''}.`);
  const ml = r.machineLoad;
  lines.push(
    `Machine load: 1-min load average ${f(ml.load1AtStart)} at the start, ${f(ml.load1AtEnd)} at the end; during the paired runs ${f(ml.duringPairs.busyCoreS, 1)} core-s busy of ${f(ml.duringPairs.wallS * Number(m.nproc), 1)}, ` +
      `of which broker + echo + bench ${f(ml.duringPairs.knownCoreS, 1)} and everything else (h2load included) ${f(ml.duringPairs.otherCoreS, 1)}; steal ${f(ml.duringPairs.stealCoreS, 1)}.`,
  );
  const disturbed = ml.duringPairs.otherCoreS > 0.25 * ml.duringPairs.wallS * Number(m.nproc);
  if (disturbed) lines.push('**DISTURBED RUN**: other processes used over a quarter of the machine during the paired runs; compare ratios and CPU per call, not absolute rates.');
  lines.push(`Loaded runs: ${thousands(Number(r.settings.requestsPerRun))} requests at -c 4 -m 32 per run, ${r.pairs.length} pairs echo/broker; response frame ${r.settings.frameBytes} B, request frame ${r.settings.requestFrameBytes} B + ${r.settings.authorizationBytes} B authorization header.`);
  lines.push('');
  lines.push('| case | req/s | p50 ms | p99 ms | vs echo | server CPU µs/call (event loop) | runs |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const c of r.cases) {
    lines.push(`| ${c.label} | ${thousands(c.rps)} | ${f(c.p50Ms, 3)} | ${f(c.p99Ms, 3)} | ${c.vsEcho === undefined ? '1' : f(c.vsEcho, 3)} | ${f(c.cpuUsPerCall, 0)} (${f(c.mainCpuUsPerCall, 0)}) | ${c.runs} |`);
  }
  lines.push('');
  lines.push('| # | target | measured | result |');
  lines.push('|---|---|---|---|');
  for (const t of r.targets) {
    lines.push(`| ${t.id}${t.gated ? ' (gated)' : ''} | ${t.text} | ${t.measured} | ${t.pass === undefined ? (t.noVerdict ?? 'not reached') : t.pass ? 'PASS' : '**MISS**'} |`);
  }
  lines.push('');
  lines.push('Paired runs (echo, broker):');
  lines.push('');
  lines.push('| pair | echo req/s | broker req/s | ratio | echo p99 ms | broker p99 ms | p99 ratio |');
  lines.push('|---:|---:|---:|---:|---:|---:|---:|');
  r.pairs.forEach((p, i) => lines.push(`| ${i + 1} | ${thousands(p.echoRps)} | ${thousands(p.brokerRps)} | ${f(p.ratio, 3)} | ${f(p.echoP99Ms, 2)} | ${f(p.brokerP99Ms, 2)} | ${f(p.p99Ratio, 2)} |`));
  lines.push('');
  lines.push(renderExchange(r.exchange));
  lines.push('');
  lines.push(renderMemory(r.memory));
  lines.push('');
  const lg = r.logging;
  if (!lg) {
    lines.push('Logging, caller authentication, metrics and V8 setting variants: not run (they run when target 1 or 2 is missed, or with BENCH_VARIANTS=1).');
  } else {
    lines.push(`Logging (median ratio to echo over ${lg.rounds.length} rounds): stdout pipe ${f(lg.medianVsEcho.pipe ?? NaN, 3)}, stdout /dev/null ${f(lg.medianVsEcho.devnull ?? NaN, 3)}, level warn (no audit line) ${f(lg.medianVsEcho.warn ?? NaN, 3)}.`);
    lines.push('');
    lines.push(`Caller authentication on the cache-hit path (same rounds): auth off (insecure-none) ${f(lg.medianVsEcho.noauth ?? NaN, 3)} of echo; auth on / auth off ${f(lg.authOnVsOff, 3)} (median of per-round ratios).`);
    lines.push('');
    lines.push(`Metrics (same rounds; every broker the bench starts serves them, as production does): metrics off ${f(lg.medianVsEcho.nometrics ?? NaN, 3)} of echo; metrics on / metrics off ${f(lg.metricsOnVsOff, 3)} (median of per-round ratios).`);
    lines.push('');
    lines.push(
      `V8 setting (same rounds; every broker first signs in the same number of users): V8's default allocation-site pretenuring ${f(lg.medianVsEcho.v8default ?? NaN, 3)} of echo; ` +
        `the broker's setting (pretenuring off) / V8's default ${f(lg.pretenuringOffVsOn, 3)} (median of per-round ratios).`,
    );
  }
  const d = r.diagnosis;
  if (d?.allocation) {
    lines.push('');
    lines.push(`Allocation per call under the same load (--trace-gc, heap growth between GCs): ${Object.entries(d.allocation).map(([k, v]) => `${k} ${f(v.bytesPerCall, 0)} B`).join(', ')}; GC pauses per 10,000 calls: ${Object.entries(d.allocation).map(([k, v]) => `${k} ${f(v.gcPauseMsPer10k, 1)} ms`).join(', ')}.`);
  }
  if (d?.startup) {
    lines.push('');
    lines.push(`Start-up profile (spawn to SERVING ${f(d.startup.spawnToServingMs, 0)} ms under the profiler, ${f(d.startup.busyMs, 0)} ms main-thread busy); loading packages, inclusive of what they load: ${d.startup.rows.map((row) => `${row.name} ${f(row.percent, 0)}%`).join(', ')}.`);
  }
  if (d?.hotPath) {
    const p = d.hotPath;
    lines.push('');
    lines.push(`Hot-path CPU profile (node --cpu-prof, ${f(p.busyMs / 1000, 1)} s busy; shares of busy time):`);
    lines.push('');
    lines.push('| self % | function |');
    lines.push('|---:|---|');
    for (const row of p.self.slice(0, 20)) lines.push(`| ${f(row.percent, 1)} | \`${row.name}\` |`);
    lines.push('');
    lines.push('| self % | area |');
    lines.push('|---:|---|');
    for (const row of p.areas) lines.push(`| ${f(row.percent, 1)} | ${row.name} |`);
    lines.push('');
    lines.push(`Inclusive: ${p.inclusive.map((row) => `${row.name.replace(/[\^$]/g, '')} ${f(row.percent, 1)}%`).join(', ')}.`);
  }
  if (r.invalidRuns.length > 0) {
    lines.push('');
    lines.push(`**INVALID runs**: ${r.invalidRuns.join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The memory curve as markdown tables plus the growth per user. */
export function renderMemory(mem: MemoryResult): string {
  const lines: string[] = [];
  const served = mem.served ? ', each then served a drive.readonly token twice (a refresh, then a cache hit)' : '';
  const control = mem.maxCachedUsers < mem.usersReached;
  const held = control ? `; a control run: the cache holds at most ${thousands(mem.maxCachedUsers)} users` : '';
  const users = control ? 'users signed in' : 'cached users';
  lines.push(`Memory (a fresh broker; users signed in through ExchangeCode${served}, ${mem.concurrency ?? 48} at a time without a pause, ${f(mem.seedRatePerS, 0)}/s, ${mem.seedErrors} errors${held}; RSS read from /proc every 250 ms):`);
  lines.push('');
  lines.push(`| ${users} | RSS MiB | s |`);
  lines.push('|---:|---:|---:|');
  for (const p of mem.curve) lines.push(`| ${thousands(p.users)} | ${f(p.rssKiB / 1024, 1)} | ${f(p.seconds, 0)} |`);
  lines.push('');
  lines.push(`| settled, ${users} | RSS MiB | after a full GC: RSS MiB | JS heap used | JS heap total | external |`);
  lines.push('|---:|---:|---:|---:|---:|---:|');
  for (const p of mem.ends) {
    lines.push(`| ${thousands(p.users)} | ${f(p.rssKiB / 1024, 1)} | ${f(p.gcRssKiB / 1024, 1)} | ${f(p.heapUsedKiB / 1024, 1)} | ${f(p.heapTotalKiB / 1024, 1)} | ${f(p.externalKiB / 1024, 1)} |`);
  }
  lines.push('');
  const cpu = mem.signInCpu;
  lines.push(`CPU per sign-in: ${f(cpu.machineMs, 2)} ms of the machine (all cores), of it ${f(cpu.brokerMs, 2)} ms in the broker and ${f(cpu.emulatorMs, 2)} ms in the Firestore emulator; steal ${f(cpu.stealCoreS, 1)} core-s.`);
  lines.push('');
  lines.push(
    `Growth per ${control ? 'user signed in' : 'cached user'}: ${f(mem.bytesPerUser, 0)} B RSS (least squares over the ${mem.traceSamples} samples from ${thousands(mem.fitFromUsers)} users on); ` +
      `between the settled ends ${f(mem.settledBytesPerUser, 0)} B RSS, ${f(mem.gcBytesPerUser, 0)} B RSS after a full GC, ${f(mem.heapBytesPerUser, 0)} B JS heap.`,
  );
  return lines.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Two panels: throughput per case (linear), p50/p99 per case (log scale). */
export function renderSvg(r: BenchResults): string {
  const width = 980;
  const labelW = 390;
  const barW = width - labelW - 90;
  const rowH = 26;
  const cases = r.cases;
  const top1 = 50;
  const panel1H = cases.length * rowH;
  const top2 = top1 + panel1H + 70;
  const panel2H = cases.length * rowH * 1.4;
  const height = top2 + panel2H + 60;
  const maxRps = Math.max(...cases.map((c) => c.rps).filter(Number.isFinite), 1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${Math.round(height)}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="10" y="22" font-size="15" font-weight="bold">TokenBroker GetAccessToken vs bare grpc-js echo (${esc(r.machine.nproc)} cores, ${esc(r.machine.node)}, ${esc(r.machine.date.slice(0, 10))})</text>`);
  out.push(`<text x="10" y="${top1 - 8}" font-weight="bold">Throughput, req/s (median of runs)</text>`);
  cases.forEach((c, i) => {
    const y = top1 + i * rowH;
    const w = Number.isFinite(c.rps) ? (c.rps / maxRps) * barW : 0;
    out.push(`<text x="${labelW - 6}" y="${y + 16}" text-anchor="end">${esc(c.label)}</text>`);
    out.push(`<rect x="${labelW}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${c.key.startsWith('echo') ? '#9e9e9e' : c.key === 'naive' ? '#e57373' : '#1e88e5'}"/>`);
    out.push(`<text x="${(labelW + w + 4).toFixed(1)}" y="${y + 16}">${Math.round(c.rps).toLocaleString('en-US')}${c.vsEcho === undefined ? '' : ` (${c.vsEcho.toFixed(2)}x)`}</text>`);
  });
  // Latency, log10 scale from 0.01 ms up to the largest p99.
  const lo = 0.01;
  const hi = Math.max(...cases.map((c) => c.p99Ms).filter(Number.isFinite), 1) * 1.5;
  const scale = (ms: number) => (Math.log10(Math.max(ms, lo) / lo) / Math.log10(hi / lo)) * barW;
  out.push(`<text x="10" y="${top2 - 8}" font-weight="bold">Latency, ms (log scale): p50 dark, p99 light</text>`);
  for (let tick = lo; tick <= hi; tick *= 10) {
    const x = labelW + scale(tick);
    out.push(`<line x1="${x.toFixed(1)}" y1="${top2}" x2="${x.toFixed(1)}" y2="${(top2 + panel2H).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${(top2 + panel2H + 14).toFixed(1)}" text-anchor="middle" fill="#666">${tick >= 1 ? tick.toFixed(0) : tick.toFixed(2)}</text>`);
  }
  cases.forEach((c, i) => {
    const y = top2 + i * rowH * 1.4;
    const h = (rowH * 1.4 - 8) / 2;
    out.push(`<text x="${labelW - 6}" y="${(y + h + 6).toFixed(1)}" text-anchor="end">${esc(c.label)}</text>`);
    out.push(`<rect x="${labelW}" y="${(y + 2).toFixed(1)}" width="${scale(c.p50Ms).toFixed(1)}" height="${h.toFixed(1)}" fill="#3949ab"/>`);
    out.push(`<text x="${(labelW + scale(c.p50Ms) + 4).toFixed(1)}" y="${(y + h).toFixed(1)}" font-size="10">p50 ${c.p50Ms.toFixed(3)}</text>`);
    out.push(`<rect x="${labelW}" y="${(y + 2 + h).toFixed(1)}" width="${scale(c.p99Ms).toFixed(1)}" height="${h.toFixed(1)}" fill="#9fa8da"/>`);
    out.push(`<text x="${(labelW + scale(c.p99Ms) + 4).toFixed(1)}" y="${(y + 2 * h).toFixed(1)}" font-size="10">p99 ${c.p99Ms.toFixed(3)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The ExchangeCode paragraph: end to end, waiting, ours, the proxies' hops, the broker's CPU. */
export function renderExchange(e: Record<string, number>): string {
  const x = (k: string) => e[k] ?? NaN;
  return (
    `ExchangeCode (${x('samples')} sequential sign-ins on an idle broker): end to end p50 ${f(x('totalP50Ms'))} ms (p99 ${f(x('totalP99Ms'))}); waiting on Google + Firestore p50 ${f(x('waitP50Ms'))} ms ` +
      `(Google ${f(x('googleP50Ms'))} ms over ${x('googleCallsPerExchange')} request, Firestore ${f(x('firestoreP50Ms'))} ms over ${x('firestoreCallsPerExchange')} RPCs); ours p50 ${f(x('overheadP50Ms'))} ms, p90 ${f(x('overheadP90Ms'))} ms. ` +
      `The proxies' own hops (measured: ${f(x('firestoreReadHopMs'))} ms per Firestore read, ${f(x('firestoreWriteHopMs'))} ms per write, ${f(x('oauthProxyHopMs'))} ms per HTTP request) leave ${f(x('overheadCorrectedP50Ms'))} ms. ` +
      `"Ours" still includes the client and the gRPC round trip (a cached GetAccessToken from the same client: ${f(x('cachedGetAccessTokenRttP50Ms'))} ms p50). ` +
      `The broker itself spent ${f(x('brokerMainThreadCpuMsPerExchange'), 1)} ms of event-loop CPU per sign-in (${f(x('brokerCpuMsPerExchange'), 1)} ms all threads, /proc).\n\n` +
      `In the broker (its metrics, scraped after each sign-in): handler p50 ${f(x('handlerP50Ms'))} ms, of it inside Google calls ${f(x('inGoogleP50Ms'))} ms (${x('inGoogleCallsPerExchange')} request) and inside Firestore calls ${f(x('inFirestoreP50Ms'))} ms (${x('inFirestoreCallsPerExchange')} operations, client library included); ` +
      `its own p50 ${f(x('ownP50Ms'))} ms, p90 ${f(x('ownP90Ms'))} ms. Outside the handler (client, gRPC both ways): ${f(x('outsideHandlerP50Ms'))} ms p50. Largest overlap of two waits on the wire: ${f(x('maxWireOverlapMs'))} ms.`
  );
}
