/**
 * How busy the whole machine was during a measurement, from /proc/stat:
 * on a shared 2-core box other processes (or the hypervisor: steal) take
 * CPU from the servers under test and make a run unrepresentative.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

/** CPU time of the whole machine, in ms (all cores together). */
export interface MachineCpu {
  busyMs: number;
  stealMs: number;
  totalMs: number;
  atMs: number;
}

const JIFFY_MS = 10; // USER_HZ is 100 on Linux

export function machineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, ...fields] = line.trim().split(/\s+/);
  const n = fields.map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = n;
  const busy = user + nice + system + irq + softirq;
  return { busyMs: busy * JIFFY_MS, stealMs: steal * JIFFY_MS, totalMs: (busy + idle + iowait + steal) * JIFFY_MS, atMs: performance.now() };
}

/** The 1-minute load average. */
export function load1(): number {
  return loadavg()[0] ?? NaN;
}

/**
 * Core-seconds the machine spent busy between `a` and `b` outside the given
 * known consumers (ms of CPU each), and the hypervisor's steal.
 */
export function foreignCpu(a: MachineCpu, b: MachineCpu, knownMs: number): { wallS: number; busyCoreS: number; knownCoreS: number; otherCoreS: number; stealCoreS: number } {
  const busy = (b.busyMs - a.busyMs) / 1000;
  const known = knownMs / 1000;
  return { wallS: (b.atMs - a.atMs) / 1000, busyCoreS: busy, knownCoreS: known, otherCoreS: Math.max(0, busy - known), stealCoreS: (b.stealMs - a.stealMs) / 1000 };
}
