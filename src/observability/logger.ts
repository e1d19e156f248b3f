import pino from 'pino';
import { BatchedLineWriter } from './batched-line-writer';
import { isoTimeField } from './iso-time-field';

/**
 * The logging surface the service uses: structured fields first, then a
 * message. Fields must never hold a token, code, secret or key.
 */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** Log levels accepted by configuration. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Stdout batching: a write once this much is waiting, or after this long. */
const BATCH_CHARS = 8192;
const BATCH_MS = 250;
/** At most this much waits for a stdout reader that is behind (about 20,000 audit lines). */
const MAX_WAITING_CHARS = 4 * 1024 * 1024;

/** Cloud Logging's names for pino's levels (it reads WARN and FATAL as DEFAULT). */
const SEVERITY: Record<string, string> = { trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL' };

/**
 * Builds the JSON logger: one object per line on `destination` (stdout by
 * default), with `severity` as Google Cloud Logging reads it.
 *
 * With `batched` (the server) lines gather until 8 KiB are waiting or 250
 * ms have passed ({@link BatchedLineWriter}), so the line every call writes
 * costs a string append instead of a system call (one write per line took a
 * quarter of the hot path's CPU under load); a process killed
 * outright (SIGKILL, out of memory) then loses at most the last 250 ms of
 * lines. The jobs write each line at once, in order with the report they
 * print, asynchronously. Whatever is still buffered is written
 * synchronously when the process exits, so the last lines before an exit
 * survive.
 */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream, batched = false): Logger {
  const options = {
    level,
    base: undefined,
    messageKey: 'message',
    timestamp: isoTimeField(),
    formatters: { level: (label: string) => ({ severity: SEVERITY[label] ?? 'DEFAULT' }) },
  };
  if (destination) return pino(options, destination);
  if (batched) {
    const lines = new BatchedLineWriter({ fd: 1, batchChars: BATCH_CHARS, maxDelayMs: BATCH_MS, maxWaitingChars: MAX_WAITING_CHARS });
    process.once('exit', () => lines.flushSync(true));
    return pino(options, lines);
  }
  const stdout = pino.destination({ dest: 1, sync: false });
  process.once('exit', () => {
    try {
      stdout.flushSync();
    } catch {
      // Nothing left to write, or stdout already gone: nothing to save.
    }
  });
  return pino(options, stdout);
}
