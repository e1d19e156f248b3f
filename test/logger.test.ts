import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { isoTimeField } from '../src/observability/iso-time-field';
import { createLogger, EncodedFields, pinoOptions, type Logger } from '../src/observability/logger';

/** A stream and the text written to it so far. */
function captured(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  const chunks: string[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
  return { out, text: () => chunks.join('') };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

/** Records of every kind of field, with text that needs escaping. */
const RECORDS: Array<Record<string, unknown>> = [
  { event: 'token_issued', userId: 'u-1', scopes: ['https://www.googleapis.com/auth/drive.readonly', 'openid'], rpc: 'GetAccessToken', code: 'OK', latencyMs: 0.123, caller: 'photos@p.iam.gserviceaccount.com' },
  { event: 'quotes "and" \\backslashes\\', text: 'line\nbreak\ttab\u0001control', unicode: 'é ü 日本 😀', empty: '', scopes: [], odd: ['a"b', 'c\\d', 'e\nf'] },
  { n: 0, negativeZero: -0, big: 1e21, small: 5e-7, nan: Number.NaN, inf: Number.POSITIVE_INFINITY, yes: true, no: false, skipped: undefined },
  { event: 'rpc_failed', error: { name: 'BrokerError', code: 'UNAVAILABLE', message: 'x "y"', cause: { name: 'Error', message: 'z' } }, nothing: null, when: new Date(Date.UTC(2026, 0, 2)), nested: [[1, 'a'], { b: [true] }], fn: () => 1, sym: Symbol('s') },
  {},
];

function logAll(logger: Logger, records: Array<Record<string, unknown>>, message: string): void {
  for (const fields of records) {
    logger.debug(fields, message);
    logger.info(fields, message);
    logger.warn(fields, message);
    logger.error(fields, message);
  }
}

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

  it('writes lines exactly as pino writes them, at every level', async () => {
    const at = Date.UTC(2026, 11, 7, 3, 0, 0, 5);
    const ours = captured();
    logAll(createLogger('debug', ours.out, false, () => at), RECORDS, 'a "quoted" message\n');
    const reference = captured();
    logAll(pino(pinoOptions('debug', isoTimeField(() => at)), reference.out) as unknown as Logger, RECORDS, 'a "quoted" message\n');
    await flush();
    expect(ours.text().split('\n')).to.have.length(RECORDS.length * 4 + 1);
    expect(ours.text()).to.equal(reference.text());
    const first = JSON.parse(ours.text().split('\n')[1] as string) as Record<string, unknown>;
    expect(first).to.deep.equal({ severity: 'INFO', time: '2026-12-07T03:00:00.005Z', ...RECORDS[0], message: 'a "quoted" message\n' });
  });

  it('leaves fields JSON.stringify refuses (a cycle, a BigInt) to pino, in order with the other lines', async () => {
    const at = Date.UTC(2026, 11, 7, 3, 0, 0, 5);
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    const records = [{ event: 'one', cyclic }, { event: 'two' }, { event: 'three', big: 10n }];
    const ours = captured();
    const logger = createLogger('info', ours.out, false, () => at);
    for (const fields of records) logger.info(fields, 'line');
    logger.debug({ event: 'below the level', big: 1n }, 'not written');
    const reference = captured();
    const pinoLogger = pino(pinoOptions('info', isoTimeField(() => at)), reference.out);
    for (const fields of records) pinoLogger.info(fields, 'line');
    await flush();
    expect(ours.text()).to.equal(reference.text());
    const lines = ours.text().trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((l) => l.event)).to.deep.equal(['one', 'two', 'three']);
    expect(lines[0]?.cyclic).to.deep.equal({ name: 'loop', self: '[Circular]' });
    expect(lines[2]?.big).to.equal(10);
  });

  it('writes fields encoded beforehand first, as if they led the fields of the line, also when pino writes it', async () => {
    const at = Date.UTC(2026, 11, 7, 3, 0, 0, 5);
    const leading = new EncodedFields({ event: 'token_issued', userId: 'u-"1"', scopes: ['https://www.googleapis.com/auth/drive.readonly', 'a\nb'], rpc: 'GetAccessToken', code: 'OK', n: 1.5, yes: true });
    const ours = captured();
    const logger = createLogger('info', ours.out, false, () => at);
    logger.info({ latencyMs: 0.042, caller: 'photos@p.iam.gserviceaccount.com' }, 'GetAccessToken answered', leading);
    logger.info({ latencyMs: 0.043, big: 2n }, 'GetAccessToken answered', leading);
    logger.info({}, 'only those', leading);
    logger.info({ latencyMs: 1 }, 'none', new EncodedFields({}));
    const reference = captured();
    const pinoLogger = pino(pinoOptions('info', isoTimeField(() => at)), reference.out);
    pinoLogger.info({ ...leading.fields, latencyMs: 0.042, caller: 'photos@p.iam.gserviceaccount.com' }, 'GetAccessToken answered');
    pinoLogger.info({ ...leading.fields, latencyMs: 0.043, big: 2n }, 'GetAccessToken answered');
    pinoLogger.info({ ...leading.fields }, 'only those');
    pinoLogger.info({ latencyMs: 1 }, 'none');
    await flush();
    expect(ours.text()).to.equal(reference.text());
    const first = JSON.parse(ours.text().split('\n')[0] as string) as Record<string, unknown>;
    expect(Object.keys(first)).to.deep.equal(['severity', 'time', 'event', 'userId', 'scopes', 'rpc', 'code', 'n', 'yes', 'latencyMs', 'caller', 'message']);
    expect(first.userId).to.equal('u-"1"');
  });

  it('keeps a lone surrogate as its JSON escape (pino would write it raw, and UTF-8 would lose it)', async () => {
    const { out, text } = captured();
    createLogger('info', out).info({ event: 'odd', text: 'a\ud800b' }, 'm');
    await flush();
    expect(text()).to.include('"text":"a\\ud800b"');
    expect((JSON.parse(text()) as { text: string }).text).to.equal('a\ud800b');
  });

  it('writes nothing at level silent', async () => {
    const { out, text } = captured();
    logAll(createLogger('silent', out), [{ event: 'plain' }, { event: 'cyclic', big: 1n }], 'never');
    await flush();
    expect(text()).to.equal('');
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
