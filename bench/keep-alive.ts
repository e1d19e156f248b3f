/**
 * `npm run bench:keep-alive`: the keep-alive job (`node dist/main.js
 * keep-alive`, compiled, as a child process) over 10,000 stored grants,
 * against the Firestore emulator (through a counting proxy) and the local
 * Google. Reports wall time, the job's own counts, upstream calls and
 * Firestore reads and writes, per run and per grant. See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { Firestore } from '@google-cloud/firestore';
import { FirestoreDocuments } from '../src/adapters/firestore/firestore-documents';
import { parseKeyset } from '../src/crypto/keyset';
import { Sealer } from '../src/crypto/sealer';
import { Cleanup } from './lib/cleanup';
import { BenchStack } from './lib/stack';
import { renderKeepAlive, type KeepAliveBenchResults } from './keep-alive/render';
import { runKeepAliveJob, type JobRun } from './keep-alive/run-job';
import { seedGrants, type SeedResult } from './keep-alive/seed-grants';

const REPO_ROOT = path.resolve(__dirname, '..');
const OUT_DIR = path.resolve(process.env.BENCH_OUT ?? path.join(REPO_ROOT, 'bench', 'results'));

/** Tunables, from the environment (see bench/README.md). */
const SETTINGS = {
  grants: intEnv('KEEPALIVE_GRANTS', 10_000),
  /** `--per-second` of the full run; the job's default (10) would take ~15 min for 10,000 grants. */
  perSecond: intEnv('KEEPALIVE_PER_SECOND', 1000),
  /** Grants of the run at the job's default rate. */
  defaultRateGrants: intEnv('KEEPALIVE_DEFAULT_RATE_GRANTS', 300),
  /** The whole bench is aborted (and everything stopped) after this; it took 9.5 min on a busy 2-core machine. */
  budgetSeconds: intEnv('KEEPALIVE_BUDGET_SECONDS', 900),
};

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  return raw !== undefined && /^\d+$/.test(raw) && Number(raw) > 0 ? Number(raw) : fallback;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

const cleanup = new Cleanup();

async function main(): Promise<number> {
  const wallStart = performance.now();
  const deadline = wallStart + SETTINGS.budgetSeconds * 1000;
  const remainingMs = () => Math.max(1000, deadline - performance.now());
  // Nothing may leave this machine; children get a cleaned environment too (lib/processes.ts).
  process.env.METADATA_SERVER_DETECTION = 'none';
  for (const name of Object.keys(process.env)) {
    if (name.startsWith('GOOGLE_') || name.startsWith('FIRESTORE_')) delete process.env[name];
  }
  const machine = { nproc: nproc(), cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, date: new Date().toISOString(), load1AtStart: loadavg()[0] ?? NaN, load1AtEnd: NaN };
  say(`keep-alive bench: ${SETTINGS.grants} grants, ${machine.nproc} cores, Node ${machine.node}, load ${machine.load1AtStart.toFixed(2)}`);

  const workDir = mkdtempSync(path.join(tmpdir(), 'tokenbroker-bench-keepalive-'));
  cleanup.push(() => rmSync(workDir, { recursive: true, force: true }));
  say('starting the Firestore emulator, the local Google and the counting proxies...');
  const stack = await BenchStack.start(workDir, REPO_ROOT, (step) => cleanup.push(step));
  const db = new Firestore(stack.emulator.clientSettings());
  cleanup.push(() => db.terminate());
  const documents = FirestoreDocuments.open(stack.emulator.clientSettings());
  cleanup.push(() => documents.close());
  const sealer = new Sealer(parseKeyset(readFileSync(stack.keysetFile, 'utf8'), 'bench keyset'));

  const seeds: Array<{ collection: string } & SeedResult> = [];
  const runs: JobRun[] = [];
  const checks: KeepAliveBenchResults['checks'] = [];
  const check = (what: string, expected: number, found: number) => checks.push({ what, expected, found, ok: expected === found });

  // 1. The job's default rate, on a small collection of its own.
  const rateCollection = `${stack.collection}_default_rate`;
  say(`seeding ${SETTINGS.defaultRateGrants} grants for the run at the default rate...`);
  const rateSeed = await seedGrants(stack, db, documents, sealer, rateCollection, SETTINGS.defaultRateGrants, Date.now());
  seeds.push({ collection: rateCollection, ...rateSeed });
  say('running keep-alive at its default rate (10 refreshes/s)...');
  const atDefault = await runKeepAliveJob(stack, 'default rate', rateCollection, [], remainingMs());
  runs.push(atDefault);
  say(`  ${JSON.stringify(atDefault.report)} in ${atDefault.wallSeconds.toFixed(1)} s`);
  checkRun(check, 'default rate', atDefault, rateSeed);

  // 2. 10,000 grants, then the same again (nothing is due any more).
  say(`seeding ${SETTINGS.grants} grants...`);
  const now = Date.now();
  const seed = await seedGrants(stack, db, documents, sealer, stack.collection, SETTINGS.grants, now);
  seeds.push({ collection: stack.collection, ...seed });
  say(`  refresh tokens in ${seed.seconds.tokens.toFixed(1)} s, documents in ${seed.seconds.documents.toFixed(1)} s`);
  const rate = String(SETTINGS.perSecond);
  say(`running keep-alive over ${SETTINGS.grants} grants at --per-second ${rate}...`);
  const full = await runKeepAliveJob(stack, `${SETTINGS.grants} grants`, stack.collection, ['--per-second', rate], remainingMs());
  runs.push(full);
  say(`  ${JSON.stringify(full.report)} in ${full.wallSeconds.toFixed(1)} s`);
  checkRun(check, 'full', full, seed);
  const grants = db.collection(stack.collection);
  const deadStored = (await grants.where('status', '==', 'REAUTH_REQUIRED').count().get()).data().count;
  check('full: documents REAUTH_REQUIRED after the run', seed.mix['dead-at-google'] + seed.mix['already-dead'], deadStored);
  const refreshedStored = (await grants.where('last_refreshed_at', '>=', new Date(now)).count().get()).data().count;
  check('full: documents refreshed by the run', seed.mix.due + seed.mix['due-never-refreshed'], refreshedStored);

  say('running it again (a repeated run finds nothing due)...');
  const repeat = await runKeepAliveJob(stack, `${SETTINGS.grants} grants, repeated`, stack.collection, ['--per-second', rate], remainingMs());
  runs.push(repeat);
  say(`  ${JSON.stringify(repeat.report)} in ${repeat.wallSeconds.toFixed(1)} s`);
  check('repeat: due', 0, repeat.report.due);
  check('repeat: Google token calls', 0, repeat.upstream.token);

  const due = full.report.due;
  const marginalPerRefresh =
    due > 0
      ? {
          firestoreRpcs: (full.firestore.totalRpcs - repeat.firestore.totalRpcs) / due,
          documentsRead: (full.firestore.documentsRead - repeat.firestore.documentsRead) / due,
          writes: (full.firestore.writes - repeat.firestore.writes) / due,
          upstream: (full.upstreamProxied - repeat.upstreamProxied) / due,
          wallMs: ((full.wallSeconds - repeat.wallSeconds) * 1000) / due,
        }
      : undefined;
  machine.load1AtEnd = loadavg()[0] ?? NaN;
  const results: KeepAliveBenchResults = {
    machine,
    settings: { ...SETTINGS },
    seeds,
    runs,
    marginalPerRefresh,
    checks,
    durationSeconds: (performance.now() - wallStart) / 1000,
  };
  const markdown = renderKeepAlive(results);
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(path.join(OUT_DIR, 'keep-alive-latest.md'), markdown);
  writeFileSync(path.join(OUT_DIR, 'keep-alive-latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  say('');
  say(markdown);
  say(`written: ${path.relative(REPO_ROOT, path.join(OUT_DIR, 'keep-alive-latest.md'))}, keep-alive-latest.json`);
  return checks.every((c) => c.ok) ? 0 : 1;
}

/** The job's counts against what was seeded, and Google's count of refreshes against them. */
function checkRun(check: (what: string, expected: number, found: number) => void, name: string, run: JobRun, seed: SeedResult): void {
  const mix = seed.mix;
  const due = mix.due + mix['due-never-refreshed'] + mix['dead-at-google'];
  check(`${name}: scanned`, seed.grants, run.report.scanned);
  check(`${name}: due`, due, run.report.due);
  check(`${name}: refreshed`, mix.due + mix['due-never-refreshed'], run.report.refreshed);
  check(`${name}: dead`, mix['dead-at-google'], run.report.dead);
  check(`${name}: failed`, 0, run.report.failed);
  check(`${name}: Google refresh requests`, due, run.upstream.refreshToken);
  check(`${name}: exit code`, 0, run.exitCode ?? -1);
}

function nproc(): string {
  try {
    return execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    return String(cpus().length);
  }
}

let finished = false;
const abort = (why: string, code: number) => {
  if (finished) return;
  finished = true;
  say(`\n${why}: stopping everything the bench started...`);
  void cleanup.run(say).finally(() => process.exit(code));
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => abort(signal, 130));
const budget = setTimeout(() => abort(`over the ${SETTINGS.budgetSeconds} s budget (KEEPALIVE_BUDGET_SECONDS)`, 1), SETTINGS.budgetSeconds * 1000 + 30_000);
budget.unref();

main()
  .then(
    (code) => code,
    (err: unknown) => {
      say(`keep-alive bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return 1;
    },
  )
  .then(async (code) => {
    if (finished) return;
    finished = true;
    await cleanup.run(say);
    process.exit(code);
  });
