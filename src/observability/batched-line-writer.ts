import { writeSync } from 'node:fs';

/** Settings of {@link BatchedLineWriter}. */
export interface BatchedLineWriterOptions {
  /** File descriptor the lines go to (1: stdout). */
  fd: number;
  /** Write once this many characters are waiting. */
  batchChars: number;
  /** ...or once the oldest waiting line is this old. */
  maxDelayMs: number;
  /**
   * At most this many characters wait for a reader that is behind; lines
   * beyond are dropped and counted (see {@link BatchedLineWriter}).
   */
  maxWaitingChars: number;
}

/**
 * A log destination that gathers lines in memory and writes them with one
 * system call per batch: once `batchChars` are waiting, `maxDelayMs` after
 * the first waiting line, and whatever waits when {@link flushSync} is called
 * (at exit). Each write is synchronous, so lines leave in order and none is
 * half in flight when the process exits.
 *
 * It exists because pino's batching destination (sonic-boom with minLength)
 * appends each line to one growing string and measures that string's UTF-8
 * length on every write: flattening kilobytes per line, a tenth of the
 * GetAccessToken hot path's CPU under load. Here a line costs a string
 * append, and a batch one UTF-8 length count.
 *
 * Stdout is a non-blocking pipe once anything in the process touches
 * `process.stdout`. When the pipe is full (EAGAIN) the rest of the batch goes
 * first with the next flush, 1 ms later when the pipe took part of it, and
 * after twice the last pause (up to 16 ms) when it took nothing: a reader
 * back from a pause is caught up with at once, and one that stopped costs
 * some 60 refused writes a second. While the reader stays behind, at most
 * `maxWaitingChars` wait; later lines are dropped, and the first write after
 * the reader caught up ends with a WARNING line giving how many. A
 * descriptor that is gone (EPIPE, EBADF) ends the writer: nothing could read
 * the lines.
 */
export class BatchedLineWriter {
  /** The lines waiting, joined as they come (V8 keeps the pieces until the write flattens them once). */
  private waiting = '';
  /** Bytes of a batch a full descriptor did not take yet; they go first. */
  private unwritten: Buffer | undefined;
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The pause before retrying a batch the descriptor refused. */
  private retryMs = 1;
  private closed = false;

  constructor(private readonly options: BatchedLineWriterOptions) {
    for (const setting of ['batchChars', 'maxDelayMs', 'maxWaitingChars'] as const) {
      if (!(options[setting] > 0)) throw new Error(`BatchedLineWriter: ${setting} must be positive, got ${options[setting]}`);
    }
  }

  /** Queues one line (pino passes each serialized line, newline included). */
  write(line: string): boolean {
    if (this.closed) return false;
    if (this.dropped > 0 || (this.unwritten && this.unwritten.length + this.waiting.length + line.length > this.options.maxWaitingChars)) {
      // Once a line is dropped, so is every line until the backlog is written: the note then sits where the gap is.
      this.dropped += 1;
      return true;
    }
    this.waiting += line;
    if (this.waiting.length >= this.options.batchChars && !this.unwritten) this.flushSync();
    else this.timer ??= setTimeout(() => this.flushSync(), this.options.maxDelayMs).unref();
    return true;
  }

  /**
   * Writes everything waiting now. A full non-blocking descriptor keeps the
   * rest for the next flush; with `final` (at exit, when there is no next
   * one) it is retried for up to a second.
   */
  flushSync(final = false): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.closed || (this.waiting === '' && !this.unwritten)) return;
    let data: string | Buffer = this.unwritten ?? this.takeWaiting();
    this.unwritten = undefined;
    let retries = final ? 1000 : 0;
    let progressed = false;
    for (;;) {
      try {
        const wrote = typeof data === 'string' ? writeSync(this.options.fd, data) : writeSync(this.options.fd, data);
        progressed ||= wrote > 0;
        data = unwrittenPart(data, wrote);
      } catch (err: unknown) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') {
          this.close();
          return;
        }
        if (retries-- > 0) {
          Atomics.wait(PAUSE, 0, 0, 1);
          continue;
        }
        // The reader is behind: keep the rest, in order, for the next flush.
        this.unwritten = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
        this.retryMs = progressed ? 1 : Math.min(this.retryMs * 2, MAX_RETRY_MS);
        this.timer = setTimeout(() => this.flushSync(), this.retryMs).unref();
        return;
      }
      if (data.length > 0) continue;
      if (this.waiting === '' && this.dropped === 0) return;
      // A backlog was written; what queued behind it (and the count of what did not fit) goes next.
      data = this.takeWaiting();
    }
  }

  /** Everything waiting, followed by the note of dropped lines if there were any. */
  private takeWaiting(): string {
    let text = this.waiting;
    this.waiting = '';
    if (this.dropped > 0) {
      const note = { severity: 'WARNING', time: new Date().toISOString(), event: 'log_lines_dropped', dropped: this.dropped, message: 'log lines dropped: stdout was not read fast enough' };
      text += `${JSON.stringify(note)}\n`;
      this.dropped = 0;
    }
    return text;
  }

  /** Stops for good: the descriptor cannot be written any more. */
  private close(): void {
    this.closed = true;
    this.waiting = '';
    this.unwritten = undefined;
  }
}

/** What is left of `data` after a write took `wrote` bytes of it (empty when it took them all). */
function unwrittenPart(data: string | Buffer, wrote: number): Buffer {
  if (typeof data !== 'string') return data.subarray(wrote);
  return wrote === Buffer.byteLength(data, 'utf8') ? EMPTY : Buffer.from(data, 'utf8').subarray(wrote);
}

const EMPTY = Buffer.alloc(0);

/** The longest pause between retries of a batch a full descriptor refused. */
const MAX_RETRY_MS = 16;

/** What a retry at exit sleeps on (Atomics.wait on a value that never changes: a 1 ms pause). */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));
