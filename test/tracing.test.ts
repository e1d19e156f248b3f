import { Metadata, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseCloudTraceContext, parseTraceparent } from '../src/observability/trace-context';
import { expectGrpcError, TestStack, useStack } from './support/stack';

const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';
const HOUR = 3600_000;

/** Modules only tracing loads: the SDK, the exporter, the context manager, and our SDK wiring. */
const SDK_MODULE = /[\\/](@opentelemetry[\\/](sdk-trace|exporter-trace-otlp-http|context-async-hooks|otlp-exporter-base)[\\/]|observability[\\/]otlp-tracing\.[jt]s$)/;

function sdkModulesLoaded(): string[] {
  return Object.keys(require.cache).filter((file) => SDK_MODULE.test(file));
}

function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

function withHeaders(headers: Record<string, string>): { metadata: Metadata } {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
  return { metadata };
}

/** Log lines of `stack` since `from`, parsed, that mention `userId`. */
function linesFor(stack: TestStack, from: number, userId: string): Array<Record<string, unknown>> {
  return stack.logs
    .slice(from)
    .filter((line) => line.includes(userId))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('trace context in log lines (tracing off)', () => {
  const stack = useStack();

  it('loads no OpenTelemetry SDK and exports nothing when tracing is off', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    await stack.client.getAccessToken({ userId: user.sub }, withHeaders({ traceparent: `00-${hex(16)}-${hex(8)}-01` }));
    expect(stack.config.tracing.exporter).to.equal('none');
    expect(sdkModulesLoaded()).to.deep.equal([]);
  });

  it('adds Cloud Logging\'s trace fields from traceparent to the one line of each call, cache hit or not', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    const traceId = hex(16);
    const spanId = hex(8);
    const from = stack.logs.length;
    const headers = () => withHeaders({ traceparent: `00-${traceId}-${spanId}-01` });
    await stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] }, headers()); // a miss: refreshed
    await stack.client.getAccessToken({ userId: user.sub, scopes: [DRIVE] }, headers()); // the hot path
    await expectGrpcError(stack.client.getAccessToken({ userId: user.sub, scopes: ['https://www.googleapis.com/auth/gmail.readonly'] }, headers()), status.FAILED_PRECONDITION, 'SCOPE_NOT_GRANTED');
    const lines = linesFor(stack, from, user.sub).filter((l) => l.rpc === 'GetAccessToken');
    const failed = stack.logs.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'rpc_failed');
    expect(lines.map((l) => l.event)).to.deep.equal(['token_issued', 'token_issued']);
    expect(failed).to.have.length(1);
    for (const line of [...lines, ...failed]) {
      expect(line).to.include({
        'logging.googleapis.com/trace': `projects/${stack.config.projectId}/traces/${traceId}`,
        'logging.googleapis.com/spanId': spanId,
        'logging.googleapis.com/trace_sampled': true,
      });
    }
  });

  it('reads x-cloud-trace-context (decimal span ID) when there is no traceparent', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    const traceId = hex(16);
    const from = stack.logs.length;
    await stack.client.getProfile({ userId: user.sub }, withHeaders({ 'x-cloud-trace-context': `${traceId}/12345678901234567890;o=0` }));
    const [line] = stack.logs.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.rpc === 'GetProfile');
    expect(line).to.include({
      'logging.googleapis.com/trace': `projects/${stack.config.projectId}/traces/${traceId}`,
      'logging.googleapis.com/spanId': 'ab54a98ceb1f0ad2',
      'logging.googleapis.com/trace_sampled': false,
    });
  });

  it('ignores malformed trace headers and never logs their text', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    const marker = `evil${hex(4)}`;
    const bad: Array<Record<string, string>> = [
      { traceparent: `00-${hex(16)}-${hex(8)}-01-${marker}` },
      { traceparent: `00-${'0'.repeat(32)}-${hex(8)}-01` },
      { traceparent: `00-${hex(16).toUpperCase()}-${hex(8)}-01` },
      { traceparent: `${marker}` },
      { 'x-cloud-trace-context': `${hex(16)}/1;o=1","severity":"CRITICAL","${marker}":"` },
      { 'x-cloud-trace-context': `${hex(16)}/99999999999999999999999;o=1` },
    ];
    const from = stack.logs.length;
    for (const headers of bad) await stack.client.getProfile({ userId: user.sub }, withHeaders(headers));
    const lines = stack.logs.slice(from);
    expect(lines.filter((l) => l.includes('"rpc":"GetProfile"'))).to.have.length(bad.length);
    for (const line of lines) {
      expect(line).to.not.include(marker);
      expect(line).to.not.include('logging.googleapis.com/trace');
    }
  });

  it('parses only well-formed trace headers', () => {
    const id = '4bf92f3577b34da6a3ce929d0e0e4736';
    expect(parseTraceparent(`00-${id}-00f067aa0ba902b7-01`)).to.deep.equal({ traceId: id, spanId: '00f067aa0ba902b7', sampled: true });
    expect(parseTraceparent(`00-${id}-00f067aa0ba902b7-00`)?.sampled).to.equal(false);
    // A later version may append fields; ff is never valid.
    expect(parseTraceparent(`01-${id}-00f067aa0ba902b7-01-more`)?.traceId).to.equal(id);
    expect(parseTraceparent(`ff-${id}-00f067aa0ba902b7-01`)).to.equal(undefined);
    expect(parseTraceparent(`00-${id}-0000000000000000-01`)).to.equal(undefined);
    expect(parseTraceparent(`00-${id}-00f067aa0ba902b7`)).to.equal(undefined);
    expect(parseTraceparent(`00-${id}-00f067aa0ba902b7-01-x`)).to.equal(undefined);
    expect(parseCloudTraceContext(`${id.toUpperCase()}/1;o=1`)).to.deep.equal({ traceId: id, spanId: '0000000000000001', sampled: true });
    expect(parseCloudTraceContext(id)).to.deep.equal({ traceId: id, spanId: undefined, sampled: false });
    expect(parseCloudTraceContext(`${id}/0;o=1`)).to.equal(undefined);
    expect(parseCloudTraceContext(`${id}/18446744073709551616`)).to.equal(undefined);
    expect(parseCloudTraceContext(`${id}/18446744073709551615;o=1`)?.spanId).to.equal('ffffffffffffffff');
    expect(parseCloudTraceContext(`${id};o=1 trailing`)).to.equal(undefined);
  });
});

/** An OTLP/HTTP receiver on loopback that keeps every request body. */
class OtlpReceiver {
  private constructor(
    private readonly server: Server,
    readonly requests: Array<{ path: string; contentType: string; body: string }>,
  ) {}

  static async start(): Promise<OtlpReceiver> {
    const requests: OtlpReceiver['requests'] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        requests.push({ path: req.url ?? '', contentType: String(req.headers['content-type']), body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const receiver = new OtlpReceiver(server, requests);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Every span received, flattened. */
  spans(): Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number | string; attributes: Array<{ key: string }> }> {
    return this.requests.flatMap((r) => {
      const payload = JSON.parse(r.body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: never[] }> }> };
      return payload.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

describe('OpenTelemetry traces (OTLP)', () => {
  it('exports a server span per RPC, child of the caller\'s traceparent, and a client span per upstream call', async () => {
    const receiver = await OtlpReceiver.start();
    let stack: TestStack | undefined;
    try {
      stack = await TestStack.start({ env: { TOKENBROKER_OTEL_EXPORTER: 'otlp', TOKENBROKER_OTEL_ENDPOINT: receiver.url } });
      const user = stack.newUser();
      await stack.signIn(user);
      stack.clock.advance(HOUR);
      const traceId = hex(16);
      const callerSpanId = hex(8);
      const from = stack.logs.length;
      const token = await stack.client.getAccessToken({ userId: user.sub }, withHeaders({ traceparent: `00-${traceId}-${callerSpanId}-01` }));
      expect(stack.google.stats().refreshToken).to.equal(1);
      const [line] = linesFor(stack, from, user.sub).filter((l) => l.event === 'token_issued');
      // Closing flushes the batch of spans.
      await stack.close();
      const closed = stack;
      stack = undefined;

      expect(receiver.requests.length).to.be.greaterThan(0);
      expect(receiver.requests.every((r) => r.path === '/v1/traces' && r.contentType.startsWith('application/json'))).to.equal(true);
      const spans = receiver.spans();
      const server = spans.find((s) => s.traceId === traceId && s.name === 'tokenbroker.v1.TokenBrokerService/GetAccessToken');
      expect(server, 'the RPC\'s server span, in the caller\'s trace').to.not.equal(undefined);
      expect(server?.parentSpanId).to.equal(callerSpanId);
      expect([2, 'SPAN_KIND_SERVER']).to.include(server?.kind);
      const upstream = spans.filter((s) => s.traceId === traceId && s.parentSpanId === server?.spanId);
      expect(upstream.map((s) => s.name)).to.deep.equal(['POST token']);
      expect([3, 'SPAN_KIND_CLIENT']).to.include(upstream[0]?.kind);
      // The sign-in had no trace header: its spans form a trace of their own.
      expect(spans.some((s) => s.name === 'tokenbroker.v1.TokenBrokerService/ExchangeCode' && s.traceId !== traceId)).to.equal(true);
      // The log line names the exported span.
      expect(line).to.include({ 'logging.googleapis.com/trace': `projects/${closed.config.projectId}/traces/${traceId}`, 'logging.googleapis.com/spanId': server?.spanId });
      // No span carries a credential or a user ID.
      const exported = receiver.requests.map((r) => r.body).join('\n');
      for (const secret of [token.accessToken, ...closed.google.issuedSecrets(), user.sub]) expect(exported).to.not.include(secret);
      expect(sdkModulesLoaded().length, 'the SDK was loaded for this stack').to.be.greaterThan(0);
    } finally {
      await stack?.close();
      await receiver.close();
    }
  });
});
