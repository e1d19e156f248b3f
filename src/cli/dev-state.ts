import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * What a running dev stack (`npm run dev`) records in `.dev/stack.json` so
 * the CLI finds it without flags. It holds no secret.
 */
export interface DevStackState {
  /** host:port of the broker's gRPC server. */
  address: string;
  /** Base URL of the local stand-in for Google. */
  oauthUrl: string;
  /** Process ID of the dev stack, to tell a live record from one a crash left behind. */
  pid: number;
}

/** File name of the record inside the dev directory. */
export const STATE_FILE = 'stack.json';

/** The dev directory: `explicit` (TOKENBROKER_DEV_DIR) if set, else `.dev` under `cwd`. */
export function devDirectory(explicit: string | undefined, cwd: string): string {
  return path.resolve(cwd, explicit !== undefined && explicit !== '' ? explicit : '.dev');
}

/**
 * The record of the dev stack running from `dir`, or undefined when there is
 * none, it is unreadable, or its process is gone (killed without cleaning up).
 */
export function readDevState(dir: string): DevStackState | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path.join(dir, STATE_FILE), 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { address, oauthUrl, pid } = parsed as Record<string, unknown>;
  if (typeof address !== 'string' || typeof oauthUrl !== 'string' || typeof pid !== 'number' || !Number.isInteger(pid)) {
    return undefined;
  }
  return isAlive(pid) ? { address, oauthUrl, pid } : undefined;
}

/** Creates the dev directory (owner only) and records `state` in it. */
export function writeDevState(dir: string, state: DevStackState): void {
  ensurePrivateDirectory(dir);
  writePrivateFile(path.join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

/** Deletes the record, but only if it is the one `pid` wrote: another stack may have taken over. */
export function removeDevState(dir: string, pid: number): void {
  const file = path.join(dir, STATE_FILE);
  try {
    const recorded = (JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown }).pid;
    if (recorded !== pid) return;
  } catch {
    return;
  }
  rmSync(file, { force: true });
}

/** Creates `dir` readable by its owner only (it holds the dev stack's secrets). */
export function ensurePrivateDirectory(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Writes `content` to a new `file` with mode 0600, replacing any older file whatever its mode. */
export function writePrivateFile(file: string, content: string): void {
  // An existing file keeps its mode on overwrite: start from a new one so the content is never readable by others.
  rmSync(file, { force: true });
  writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err: unknown) {
    // EPERM: alive, but someone else's.
    return (err as { code?: unknown }).code === 'EPERM';
  }
}
