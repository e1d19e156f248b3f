import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { isoTimeField } from '../src/observability/iso-time-field';
import { createLogger } from '../src/observability/logger';

describe('logger', () => {
  it('writes one JSON object per line with severity, an ISO time, the fields and the message', async () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
    const before = Date.now();
    const logger = createLogger('info', out);
    logger.warn({ event: 'first', n: 1 }, 'one');
    logger.info({ event: 'second' }, 'two');
    logger.debug({ event: 'below the level' }, 'three');
    await new Promise((resolve) => setImmediate(resolve));
    const lines = chunks.join('').trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map(({ time: _time, ...rest }) => rest)).to.deep.equal([
      { severity: 'WARNING', event: 'first', n: 1, message: 'one' },
      { severity: 'INFO', event: 'second', message: 'two' },
    ]);
    for (const { time } of lines) {
      expect(time).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(Date.parse(time as string)).to.be.within(before, Date.now());
    }
  });

  describe('isoTimeField', () => {
    it('formats the time field once per millisecond and again when the clock moves', () => {
      let now = Date.UTC(2026, 11, 5, 21, 30, 0, 250);
      const field = isoTimeField(() => now);
      const first = field();
      expect(first).to.equal(',"time":"2026-12-05T21:30:00.250Z"');
      expect(field(), 'the same millisecond').to.equal(first);
      now += 1;
      expect(field()).to.equal(',"time":"2026-12-05T21:30:00.251Z"');
      now -= 1_000;
      expect(field(), 'a clock stepped back').to.equal(',"time":"2026-12-05T21:29:59.251Z"');
    });
  });
});
