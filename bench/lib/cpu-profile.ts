/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof): self time per function and
 * per area (grpc-js, pino, our code, GC...), as shares of the busy time
 * (idle left out), plus inclusive time of functions named on request.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Milliseconds from the profile's start. */
export interface ProfileWindow {
  fromMs: number;
  toMs: number;
}

/** Samples per node id, only those taken within `window` when given; also the ms one sample stands for. */
function hitsOf(profile: CpuProfile, window?: ProfileWindow): { hits: Map<number, number>; msPerHit: number } {
  const hits = new Map<number, number>();
  if (!window || !profile.samples || !profile.timeDeltas) {
    let total = 0;
    for (const n of profile.nodes) {
      hits.set(n.id, n.hitCount ?? 0);
      total += n.hitCount ?? 0;
    }
    return { hits, msPerHit: (profile.endTime - profile.startTime) / 1000 / Math.max(1, total) };
  }
  let t = profile.startTime;
  let counted = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    t += profile.timeDeltas[i] ?? 0;
    const ms = (t - profile.startTime) / 1000;
    if (ms < window.fromMs || ms > window.toMs) continue;
    const id = profile.samples[i] as number;
    hits.set(id, (hits.get(id) ?? 0) + 1);
    counted += 1;
  }
  return { hits, msPerHit: (window.toMs - window.fromMs) / Math.max(1, counted) };
}

/** One row of the summary. */
export interface ProfileRow {
  name: string;
  percent: number;
}

export interface ProfileSummary {
  busyMs: number;
  /** Top functions by self time. */
  self: ProfileRow[];
  /** Self time grouped by where the code lives. */
  areas: ProfileRow[];
  /** Inclusive time of functions whose name matches the requested patterns. */
  inclusive: ProfileRow[];
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '');
}

function area(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)') return 'V8/native (program)';
    return `native ${functionName || '(anonymous)'}`;
  }
  if (url.includes('node_modules/@grpc/grpc-js')) return 'grpc-js';
  if (url.includes('node_modules/pino') || url.includes('node_modules/sonic-boom') || url.includes('fast-safe-stringify') || url.includes('node_modules/quick-format')) return 'pino (logging)';
  if (url.includes('node_modules/@bufbuild/protobuf')) return 'protobuf (ts-proto runtime)';
  if (url.includes('/dist/gen/')) return 'generated messages (ts-proto)';
  if (url.includes('/dist/')) return `TokenBroker ${url.slice(url.indexOf('/dist/') + 6).split('/')[0] ?? ''}`;
  if (url.startsWith('node:')) return `node ${url.slice(5).split('/')[1] ?? url.slice(5)}`;
  if (url.includes('node_modules/')) return shortUrl(url).split('/')[0] ?? 'node_modules';
  return 'other';
}

/**
 * Reads `file` and summarizes it, only samples within `window` when given;
 * `inclusiveOf` are function-name patterns whose subtree time is reported.
 */
export function summarizeProfile(file: string, inclusiveOf: RegExp[], window?: ProfileWindow, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const { hits: hitMap, msPerHit } = hitsOf(profile, window);
  const hitsFor = (n: ProfileNode) => hitMap.get(n.id) ?? 0;
  const totalHits = profile.nodes.reduce((s, n) => s + hitsFor(n), 0);
  const idleHits = profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').reduce((s, n) => s + hitsFor(n), 0);
  const busy = Math.max(1, totalHits - idleHits);

  const selfBy = new Map<string, number>();
  const areaBy = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = hitsFor(node);
    if (hits === 0 || node.callFrame.functionName === '(idle)') continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const key = url === '' ? functionName : `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}`;
    selfBy.set(key, (selfBy.get(key) ?? 0) + hits);
    const a = area(node);
    areaBy.set(a, (areaBy.get(a) ?? 0) + hits);
  }

  // Inclusive: hits of every subtree rooted at a matching frame, not double-counting nested matches.
  const inclusive = inclusiveOf.map((pattern) => {
    let hits = 0;
    const visit = (id: number, inside: boolean) => {
      const node = byId.get(id);
      if (!node) return;
      const matches = !inside && pattern.test(node.callFrame.functionName);
      const counted = inside || matches;
      if (counted) hits += hitsFor(node);
      for (const child of node.children ?? []) visit(child, counted);
    };
    const root = profile.nodes[0];
    if (root) visit(root.id, false);
    return { name: `${pattern.source} (inclusive)`, percent: (100 * hits) / busy };
  });

  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, hits]) => ({ name, percent: (100 * hits) / busy }));
  return { busyMs: busy * msPerHit, self: rows(selfBy).slice(0, top), areas: rows(areaBy).slice(0, 15), inclusive };
}

/**
 * For a start-up profile: time spent evaluating each package's modules
 * (including what they require), as shares of the busy time. A package is
 * counted once per sample however deeply its modules nest.
 */
export function moduleLoadCosts(file: string, top = 15): { busyMs: number; rows: ProfileRow[] } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totalHits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const idleHits = profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const busy = Math.max(1, totalHits - idleHits);
  const perPackage = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0 || node.callFrame.functionName === '(idle)') continue;
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      // Our own modules (dist/) only contain the packages they require: count packages.
      if (!frame || frame.functionName !== '' || frame.lineNumber !== 0 || !frame.url.includes('node_modules/')) continue;
      seen.add(packageOf(frame.url));
    }
    for (const pkg of seen) perPackage.set(pkg, (perPackage.get(pkg) ?? 0) + hits);
  }
  const msPerHit = (profile.endTime - profile.startTime) / 1000 / Math.max(1, totalHits);
  return {
    busyMs: busy * msPerHit,
    rows: [...perPackage.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, hits]) => ({ name: `${name} (${(hits * msPerHit).toFixed(0)} ms)`, percent: (100 * hits) / busy })),
  };
}

function packageOf(url: string): string {
  const rest = url.slice(url.lastIndexOf('node_modules/') + 'node_modules/'.length).split('/');
  return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? url);
}

/** Who a sample's work is for: the first rule whose pattern matches any frame's URL on its stack. */
export interface StackRule {
  name: string;
  url: RegExp;
}

/**
 * Busy samples within `window` attributed by whose code is on the stack, not
 * by the leaf: a Firestore write's protobuf encoding and HTTP/2 framing count
 * as Firestore's. Rules are tried in order; samples none matches are grouped
 * by their leaf's area.
 */
export function attributeByStack(file: string, rules: readonly StackRule[], window?: ProfileWindow): ProfileRow[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const { hits } = hitsOf(profile, window);
  const counts = new Map<string, number>();
  let busy = 0;
  for (const [id, n] of hits) {
    const leaf = byId.get(id);
    if (!leaf || n === 0 || leaf.callFrame.functionName === '(idle)') continue;
    busy += n;
    const urls: string[] = [];
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) urls.push(byId.get(x)?.callFrame.url ?? '');
    const rule = rules.find((r) => urls.some((u) => r.url.test(u)));
    const key = rule ? rule.name : `other: ${area(leaf)}`;
    counts.set(key, (counts.get(key) ?? 0) + n);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([name, n]) => ({ name, percent: (100 * n) / Math.max(1, busy) }));
}
