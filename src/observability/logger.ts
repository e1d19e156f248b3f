import pino, { type Logger as PinoLogger } from 'pino';
import { BatchedLineWriter } from './batched-line-writer';
import { isoTimeField } from './iso-time-field';

/**
 * The logging surface the service uses: structured fields first, then a
 * message. Fields must never hold a token, code, secret or key.
 */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  /** `leading`: fields many lines share, serialized once, written before `fields` (whose names must differ from theirs). */
  info(fields: Record<string, unknown>, message: string, leading?: EncodedFields): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** Fields {@link EncodedFields} can hold: values JSON.stringify never refuses. */
export type PlainFields = Readonly<Record<string, string | number | boolean | readonly string[]>>;

/**
 * Fields that many lines share, serialized once: a line that has them gets
 * the same bytes as if they were the first of its fields, without
 * JSON.stringify going over them again (the audit line of a cached token is
 * most of what the cache-hit path writes).
 */
export class EncodedFields {
  /** `,"name":value` for each field, in order ('' for none). */
  readonly members: string;

  constructor(readonly fields: PlainFields) {
    this.members = membersOf(JSON.stringify(fields));
  }
}

/** Log levels accepted by configuration. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Stdout batching: a write once this much is waiting, or after this long.
 * Batches of 32 KiB cost less per line than 8 KiB (0.7-0.8 against 1.0-1.3
 * µs, into a pipe a reader drains) but, each write holding up the call that
 * fills the batch, put 0.1-0.15 ms on the p99 of calls one at a time.
 */
const BATCH_CHARS = 8192;
const BATCH_MS = 250;
/** At most this much waits for a stdout reader that is behind (about 20,000 audit lines). */
const MAX_WAITING_CHARS = 4 * 1024 * 1024;

/** Cloud Logging's names for pino's levels (it reads WARN and FATAL as DEFAULT). */
const SEVERITY: Record<string, string> = { trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL' };

/** The levels a line can have, lowest first. */
const LINE_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
type LineLevel = (typeof LINE_LEVELS)[number];

/** Where lines go: pino's destinations and the batched writer all take a string per line. */
interface LineDestination {
  write(line: string): unknown;
}

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
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream, batched = false, now: () => number = Date.now): Logger {
  const time = isoTimeField(now);
  let lines: LineDestination;
  if (destination) {
    lines = destination;
  } else if (batched) {
    const writer = new BatchedLineWriter({ fd: 1, batchChars: BATCH_CHARS, maxDelayMs: BATCH_MS, maxWaitingChars: MAX_WAITING_CHARS });
    process.once('exit', () => writer.flushSync(true));
    lines = writer;
  } else {
    const stdout = pino.destination({ dest: 1, sync: false });
    process.once('exit', () => {
      try {
        stdout.flushSync();
      } catch {
        // Nothing left to write, or stdout already gone: nothing to save.
      }
    });
    lines = stdout;
  }
  return new JsonLineLogger(pino(pinoOptions(level, time), lines as NodeJS.WritableStream), lines, level, time);
}

/** pino's settings for the service's lines: `time` gives the `,"time":...` field. */
export function pinoOptions(level: LogLevel, time: () => string) {
  return {
    level,
    base: undefined,
    messageKey: 'message',
    timestamp: time,
    formatters: { level: (label: string) => ({ severity: SEVERITY[label] ?? 'DEFAULT' }) },
  };
}

/**
 * Puts each line together in pino's layout, with its time field, and writes
 * it to pino's destination: the fields as one `JSON.stringify`, which is
 * what pino does for each object-valued field, without its walk over the
 * keys (half the cost of the line every answered call writes). Fields that
 * JSON.stringify refuses (a cycle, a BigInt) are left to pino's own
 * serializer. Both write synchronously, so lines keep their order.
 */
class JsonLineLogger implements Logger {
  /** Per level: the line's start when lines of that level are written, else undefined. */
  private readonly starts: Readonly<Record<LineLevel, string | undefined>>;

  constructor(
    private readonly pino: PinoLogger,
    private readonly lines: LineDestination,
    level: LogLevel,
    private readonly time: () => string,
  ) {
    const threshold = level === 'silent' ? LINE_LEVELS.length : LINE_LEVELS.indexOf(level);
    const starts: Partial<Record<LineLevel, string>> = {};
    LINE_LEVELS.forEach((name, i) => {
      if (i >= threshold) starts[name] = `{"severity":"${SEVERITY[name]}"`;
    });
    this.starts = starts as Record<LineLevel, string | undefined>;
  }

  debug(fields: Record<string, unknown>, message: string): void {
    this.line('debug', fields, message);
  }

  info(fields: Record<string, unknown>, message: string, leading?: EncodedFields): void {
    this.line('info', fields, message, leading);
  }

  warn(fields: Record<string, unknown>, message: string): void {
    this.line('warn', fields, message);
  }

  error(fields: Record<string, unknown>, message: string): void {
    this.line('error', fields, message);
  }

  private line(level: LineLevel, fields: Record<string, unknown>, message: string, leading?: EncodedFields): void {
    const start = this.starts[level];
    if (start === undefined) return;
    let json: string | undefined;
    try {
      json = JSON.stringify(fields);
    } catch {
      // Left to pino below.
    }
    if (json === undefined || json.charCodeAt(0) !== OPENING_BRACE) {
      this.pino[level](leading ? { ...leading.fields, ...fields } : fields, message);
      return;
    }
    this.lines.write(`${start}${this.time()}${leading ? leading.members : ''}${membersOf(json)},"message":${JSON.stringify(message)}}\n`);
  }
}

/** The members of a JSON object's text, each after a comma: `,"a":1,"b":2` of `{"a":1,"b":2}`, '' of `{}`. */
function membersOf(json: string): string {
  return json.length > 2 ? `,${json.slice(1, -1)}` : '';
}

const OPENING_BRACE = 0x7b;
