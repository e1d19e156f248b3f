import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BatchedLineWriter } from '../src/observability/batched-line-writer';
import { waitFor } from './support/wait-for';

describe('BatchedLineWriter', () => {
  let dir: string;
  const open: number[] = [];

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tokenbroker-lines-'));
  });

  afterEach(() => {
    for (const fd of open.splice(0)) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });

  const openFd = (file: string, flags: number) => {
    const fd = openSync(file, flags);
    open.push(fd);
    return fd;
  };

  describe('on a file', () => {
    let file: string;
    let fd: number;
    beforeEach(() => {
      file = path.join(dir, 'out.log');
      fd = openFd(file, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND);
    });
    const written = () => readFileSync(file, 'utf8');

    it('holds lines until a batch is full, then writes them in order in one go', () => {
      const writer = new BatchedLineWriter({ fd, batchChars: 200, maxDelayMs: 60_000, maxWaitingChars: 10_000 });
      const lines = Array.from({ length: 9 }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(2)}"}\n`);
      for (const line of lines) writer.write(line);
      expect(written(), 'under the batch size nothing is written').to.equal('');
      const more = Array.from({ length: 3 }, (_, i) => `{"n":${9 + i},"pad":"é€"}\n`);
      for (const line of more) writer.write(line);
      expect(written(), 'the eleventh line (19 or 20 characters each) filled the batch: eleven went out, one waits').to.equal([...lines, ...more.slice(0, 2)].join(''));
      writer.flushSync(true);
      expect(written()).to.equal([...lines, ...more].join(''));
    });

    it('writes a lone line after the delay, without a flush', async () => {
      const writer = new BatchedLineWriter({ fd, batchChars: 1_000_000, maxDelayMs: 20, maxWaitingChars: 10_000_000 });
      writer.write('{"only":true}\n');
      expect(written()).to.equal('');
      await waitFor(() => written() === '{"only":true}\n', 'the delayed flush');
    });
  });

  it('keeps what a full pipe refused, drops lines beyond its bound, and writes a note of how many once the reader catches up', () => {
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    // Read end first (a non-blocking FIFO refuses a writer with no reader), then a non-blocking write end nobody drains yet.
    const reader = openFd(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const fd = openFd(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    // Batches above PIPE_BUF (4096 B), which a full pipe may take in part.
    const writer = new BatchedLineWriter({ fd, batchChars: 5000, maxDelayMs: 60_000, maxWaitingChars: 20_000 });
    const line = (n: number) => `{"n":${String(n).padStart(6, '0')},"pad":"${'x'.repeat(80)}"}\n`;
    // A Linux pipe holds 64 KiB: 2,000 lines of 100 characters are three times that.
    const total = 2000;
    for (let n = 0; n < total; n += 1) expect(writer.write(line(n))).to.equal(true);

    const drain = () => {
      const chunks: Buffer[] = [];
      const buffer = Buffer.alloc(65536);
      for (;;) {
        try {
          const n = readSync(reader, buffer);
          if (n === 0) break;
          chunks.push(Buffer.from(buffer.subarray(0, n)));
        } catch (err: unknown) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
          throw err;
        }
      }
      return Buffer.concat(chunks).toString('utf8');
    };
    let text = drain();
    writer.flushSync();
    text += drain();
    writer.flushSync(true);
    text += drain();

    const out = text.split('\n').filter((l) => l.length > 0);
    const note = out.find((l) => l.includes('log_lines_dropped'));
    expect(note, 'a note of the dropped lines').to.be.a('string');
    const parsed = JSON.parse(note as string) as { severity: string; dropped: number };
    expect(parsed.severity).to.equal('WARNING');
    const kept = out.filter((l) => l !== note);
    expect(kept.length + parsed.dropped, 'every line is either written or counted').to.equal(total);
    expect(kept, 'the lines kept are the first ones, in order, each whole').to.deep.equal(Array.from({ length: kept.length }, (_, n) => line(n).trimEnd()));
    expect(out.at(-1), 'the note sits where the gap is').to.equal(note);
    expect(kept.length * 100, 'what fits the pipe and the bound was kept').to.be.within(65_536, 65_536 + 20_000 + 5000);

    writer.write(line(total));
    writer.flushSync();
    expect(drain(), 'after the note, lines flow again').to.equal(line(total));
  });

  it('catches up with a reader that paused, losing nothing, while lines keep coming faster than one pipeful per maxDelayMs', async () => {
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const reader = openFd(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const fd = openFd(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    // The server's delay; a bound (1 MB) no backlog of this test should reach.
    const writer = new BatchedLineWriter({ fd, batchChars: 32_768, maxDelayMs: 250, maxWaitingChars: 1_000_000 });
    const line = (n: number) => `{"n":${String(n).padStart(7, '0')},"pad":"${'x'.repeat(79)}"}\n`;
    // 10 lines (1 kB) per millisecond for 1.2 s, by the clock, however late the timers run:
    // 1.2 MB, where one 64 KiB pipeful per 250 ms would carry 0.3 MB.
    const perMs = 10;
    const forMs = 1200;
    const started = performance.now();
    let sent = 0;
    let text = '';
    const buffer = Buffer.alloc(65536);
    const drain = () => {
      for (;;) {
        try {
          const n = readSync(reader, buffer);
          if (n === 0) return;
          text += buffer.toString('utf8', 0, n);
        } catch (err: unknown) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return;
          throw err;
        }
      }
    };
    // The reader starts 150 ms late (the pipe holds 64 ms of lines), then reads every 2 ms.
    let consume: NodeJS.Timeout | undefined;
    const late = setTimeout(() => {
      consume = setInterval(drain, 2);
    }, 150);
    try {
      await new Promise<void>((resolve) => {
        const produce = setInterval(() => {
          const due = Math.min(forMs, performance.now() - started) * perMs;
          while (sent < due) writer.write(line(sent++));
          if (sent >= forMs * perMs) {
            clearInterval(produce);
            resolve();
          }
        }, 1);
      });
      // The last, short batch goes now rather than after its delay; a backlog goes as the pipe takes it.
      writer.flushSync();
      const deadline = performance.now() + 200;
      while (performance.now() < deadline && text.length < sent * 100) {
        await new Promise((r) => setTimeout(r, 2));
      }
    } finally {
      clearTimeout(late);
      clearInterval(consume);
    }
    drain();
    const out = text.split('\n').filter((l) => l.length > 0);
    expect(out.find((l) => l.includes('log_lines_dropped')), 'no line dropped').to.equal(undefined);
    expect(out.length, 'every line arrived within 200 ms of the last').to.equal(sent);
    expect(out, 'in order, each whole').to.deep.equal(Array.from({ length: sent }, (_, n) => line(n).trimEnd()));
  });

  it('refuses lines, without throwing, once the descriptor is gone', () => {
    // A descriptor number nothing has open (EBADF), rather than a closed one the process may reuse.
    const writer = new BatchedLineWriter({ fd: 999_999, batchChars: 10, maxDelayMs: 60_000, maxWaitingChars: 1000 });
    expect(() => writer.write('{"a":"0123456789"}\n')).to.not.throw();
    expect(writer.write('{"b":1}\n'), 'later lines are refused').to.equal(false);
  });

  it('names the bad setting', () => {
    expect(() => new BatchedLineWriter({ fd: 1, batchChars: 0, maxDelayMs: 10, maxWaitingChars: 10 })).to.throw(/batchChars/);
    expect(() => new BatchedLineWriter({ fd: 1, batchChars: 10, maxDelayMs: 10, maxWaitingChars: Number.NaN })).to.throw(/maxWaitingChars/);
  });
});
