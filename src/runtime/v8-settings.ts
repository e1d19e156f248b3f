import { setFlagsFromString } from 'node:v8';

/** The V8 flag the server runs with; `node --allocation-site-pretenuring dist/main.js` restores V8's default. */
export const NO_PRETENURING = '--no-allocation-site-pretenuring';

/**
 * Turns off V8's allocation-site pretenuring for the server, unless the
 * command line chose either way (`--[no-]allocation-site-pretenuring`,
 * dashes or underscores). Returns whether it did.
 *
 * V8 watches each allocation site (a line of code that creates objects):
 * when most of a site's objects survive two minor GCs, it allocates that
 * site's objects straight into the old generation from then on. A call
 * that waits on Google or Firestore (ExchangeCode, a token refresh) lives
 * across several minor GCs, so under load the per-call objects of grpc-js
 * and node:http2, which every call shares, get that treatment; cache hits
 * then allocate their 25 KB per call as old objects that die young. On the
 * benchmark's machine (2 cores) a broker after 50 sign-ins promoted 2.7 MB
 * per minor GC instead of 0.3 MB, its minor GCs took 8-12 ms instead of 2,
 * a full GC came every 1.3 s, and cache-hit throughput fell by a fifth,
 * for as long as the process lived. Without pretenuring, objects that do
 * live long are promoted after surviving two minor GCs, as every other
 * object is: a copy more at most.
 *
 * Set at run time, before the server handles a call, so that every way of
 * starting the service (the image's CMD, Kubernetes, Cloud Run, `npm
 * start`) gets it without a flag on each command line. V8 checks this
 * flag at each GC and when it tracks an allocation, not only when the heap
 * is set up, so setting it after start takes effect.
 */
export function turnOffPretenuring(execArgv: readonly string[] = process.execArgv, setFlags: (flags: string) => void = setFlagsFromString): boolean {
  if (execArgv.some((arg) => /^--(no-?)?allocation[-_]site[-_]pretenuring$/.test(arg))) return false;
  setFlags(NO_PRETENURING);
  return true;
}
