/** The keep-alive benchmark's markdown output. */
import type { GrantKind, SeedResult } from './seed-grants';
import type { JobRun } from './run-job';

/** Everything one `npm run bench:keep-alive` measured. */
export interface KeepAliveBenchResults {
  machine: { nproc: string; cpuModel: string; node: string; date: string; load1AtStart: number; load1AtEnd: number };
  settings: Record<string, number | string>;
  seeds: Array<{ collection: string } & SeedResult>;
  runs: JobRun[];
  /** What the full run costs per due grant beyond the repeated run's cost of looking at it. */
  marginalPerRefresh: { firestoreRpcs: number; documentsRead: number; writes: number; upstream: number; wallMs: number } | undefined;
  checks: Array<{ what: string; expected: number; found: number; ok: boolean }>;
  durationSeconds: number;
}

const f = (n: number | undefined, digits = 1) => (n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits));
const thousands = (n: number) => Math.round(n).toLocaleString('en-US');

export function renderKeepAlive(r: KeepAliveBenchResults): string {
  const lines: string[] = [];
  const m = r.machine;
  lines.push(`### Keep-alive job, ${m.date.slice(0, 16).replace('T', ' ')} UTC`);
  lines.push('');
  lines.push(`Machine: \`nproc\` ${m.nproc}, ${m.cpuModel}, Node ${m.node}; 1-min load ${f(m.load1AtStart, 2)} at the start, ${f(m.load1AtEnd, 2)} at the end. Whole bench ${f(r.durationSeconds, 0)} s.`);
  for (const seed of r.seeds) {
    lines.push(`Seeded ${thousands(seed.grants)} grants in \`${seed.collection}\` (${mixText(seed.mix)}): refresh tokens from the local Google in ${f(seed.seconds.tokens)} s, documents in ${f(seed.seconds.documents)} s.`);
  }
  lines.push('');
  lines.push('| run | `--per-second` | scanned | due | refreshed | dead | failed | skipped | wall s | refreshes/s | Google token calls | Google certs calls | Firestore read RPCs (documents) | Firestore writes | job CPU s |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const run of r.runs) {
    const rep = run.report;
    lines.push(
      `| ${run.label} | ${perSecondOf(run)} | ${thousands(rep.scanned)} | ${thousands(rep.due)} | ${thousands(rep.refreshed)} | ${thousands(rep.dead)} | ${thousands(rep.failed)} | ${thousands(rep.skipped)} | ${f(run.wallSeconds)} | ${f(run.refreshesPerSecond)} | ` +
        `${thousands(run.upstream.token)} | ${thousands(run.upstream.certs)} | ${thousands(run.firestore.readRpcs)} (${thousands(run.firestore.documentsRead)}) | ${thousands(run.firestore.writes)} | ${f(run.jobCpuSeconds)} |`,
    );
  }
  lines.push('');
  lines.push('Per grant scanned:');
  lines.push('');
  lines.push('| run | wall ms | Firestore RPCs | documents read | writes | Google calls | job CPU ms | Firestore RPCs by method |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---|');
  for (const run of r.runs) {
    const n = Math.max(run.report.scanned, 1);
    lines.push(
      `| ${run.label} | ${f((run.wallSeconds * 1000) / n, 2)} | ${f(run.firestore.totalRpcs / n, 2)} | ${f(run.firestore.documentsRead / n, 2)} | ${f(run.firestore.writes / n, 2)} | ${f(run.upstreamProxied / n, 2)} | ${f((run.jobCpuSeconds * 1000) / n, 2)} | ` +
        `${Object.entries(run.firestore.byMethod).map(([k, v]) => `${k} ${thousands(v)}`).join(', ')} |`,
    );
  }
  const mp = r.marginalPerRefresh;
  if (mp) {
    lines.push('');
    lines.push(
      `Each due grant costs, beyond looking at it (full run minus the repeated run, per due grant): ${f(mp.firestoreRpcs, 2)} Firestore RPCs (${f(mp.documentsRead, 2)} documents read, ${f(mp.writes, 2)} writes), ${f(mp.upstream, 2)} Google calls, ${f(mp.wallMs, 2)} ms of wall time.`,
    );
  }
  lines.push('');
  lines.push(`Checks: ${r.checks.map((c) => `${c.what} ${c.found}/${c.expected} ${c.ok ? 'ok' : '**MISMATCH**'}`).join('; ')}.`);
  return `${lines.join('\n')}\n`;
}

function perSecondOf(run: JobRun): string {
  const i = run.args.indexOf('--per-second');
  return i >= 0 ? (run.args[i + 1] ?? '?') : '10 (default)';
}

function mixText(mix: Record<GrantKind, number>): string {
  return Object.entries(mix)
    .map(([kind, n]) => `${kind} ${thousands(n)}`)
    .join(', ');
}
