/**
 * Reads a child's `node --trace-gc` lines to estimate how many bytes it
 * allocates (per call) and how long it pauses for GC: between two GCs the
 * heap grows by exactly what was allocated, so allocation = the sum of
 * (size before GC i - size after GC i-1).
 */
import type { ManagedChild } from './processes';

interface GcEvent {
  kind: string;
  beforeMiB: number;
  afterMiB: number;
  pauseMs: number;
}

const GC_LINE = /: (Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Sweep)[^0-9]*([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

export class GcTrace {
  private readonly events: GcEvent[] = [];

  constructor(child: ManagedChild) {
    child.onLine((line) => {
      const m = GC_LINE.exec(line);
      if (m) this.events.push({ kind: m[1] ?? '', beforeMiB: Number(m[2]), afterMiB: Number(m[3]), pauseMs: Number(m[4]) });
    });
  }

  /** A point to measure from. */
  mark(): number {
    return this.events.length;
  }

  /** Bytes allocated, GCs and GC pause time from `mark` to now. */
  since(mark: number): { allocatedBytes: number; gcs: number; pauseMs: number } {
    let allocated = 0;
    let pauseMs = 0;
    for (let i = Math.max(mark, 1); i < this.events.length; i += 1) {
      const prev = this.events[i - 1] as GcEvent;
      const cur = this.events[i] as GcEvent;
      allocated += Math.max(0, cur.beforeMiB - prev.afterMiB);
    }
    for (let i = mark; i < this.events.length; i += 1) pauseMs += this.events[i]?.pauseMs ?? 0;
    return { allocatedBytes: allocated * 1024 * 1024, gcs: this.events.length - mark, pauseMs };
  }
}
