import { context, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { TraceContext } from './trace-context';

/** How spans are exported; see the README's Observability section. */
export interface TracingConfig {
  /** none: no spans, no SDK loaded; otlp: OTLP over HTTP (JSON) to `endpoint`. */
  exporter: 'none' | 'otlp';
  /** Base URL of the OTLP receiver (an OpenTelemetry Collector); spans go to `<endpoint>/v1/traces`. */
  endpoint: string;
  /** Share of calls without a sampled parent that are traced, 0 to 100; a caller's sampling decision is followed. */
  samplePercent: number;
}

/**
 * The service's tracer, or none. Code that makes spans checks `tracer`
 * first: with tracing off it does no span work at all, not even through
 * the API's no-op tracer.
 */
export interface Tracing {
  /** Undefined when tracing is off. */
  readonly tracer: Tracer | undefined;
  /** Exports the spans still buffered and stops. */
  shutdown(): Promise<void>;
}

/** Tracing switched off. */
export const TRACING_OFF: Tracing = { tracer: undefined, shutdown: () => Promise.resolve() };

/** Fully qualified name of the traced gRPC service. */
const RPC_SERVICE = 'tokenbroker.v1.TokenBrokerService';

/**
 * Starts tracing as configured. The OpenTelemetry SDK and exporter are
 * loaded here, and only when an exporter is configured: with tracing off
 * the process never loads them.
 */
export function startTracing(config: TracingConfig): Tracing {
  if (config.exporter === 'none') return TRACING_OFF;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand so that tracing off costs nothing
  const { startOtlpTracing } = require('./otlp-tracing') as typeof import('./otlp-tracing');
  return startOtlpTracing(config);
}

/**
 * The server span of one RPC, child of the caller's trace context when it
 * sent one. Work run through {@link run} sees it as the active span, so
 * upstream calls made for the RPC become its children.
 */
export class RpcSpan {
  private readonly span: Span;
  private readonly context: Context;

  constructor(tracer: Tracer, method: string, parent: TraceContext | undefined) {
    const parentContext = parent?.spanId
      ? trace.setSpanContext(context.active(), {
          traceId: parent.traceId,
          spanId: parent.spanId,
          traceFlags: parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
          isRemote: true,
        })
      : context.active();
    this.span = tracer.startSpan(
      `${RPC_SERVICE}/${method}`,
      { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.service': RPC_SERVICE, 'rpc.method': method } },
      parentContext,
    );
    this.context = trace.setSpan(parentContext, this.span);
  }

  /** True when the span is sampled and will be exported. */
  get recording(): boolean {
    return this.span.isRecording();
  }

  /** This span's IDs, for the log line's trace fields. */
  get traceContext(): TraceContext {
    const { traceId, spanId, traceFlags } = this.span.spanContext();
    return { traceId, spanId, sampled: (traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED };
  }

  /** Runs `work` with this span active. */
  run<T>(work: () => Promise<T>): Promise<T> {
    return context.with(this.context, work);
  }

  /** Ends the span with the RPC's gRPC status (`codeName` e.g. NOT_FOUND); statuses the server is to blame for mark it failed. */
  end(code: number, codeName: string, serverFault: boolean): void {
    this.span.setAttribute('rpc.grpc.status_code', code);
    if (serverFault) this.span.setStatus({ code: SpanStatusCode.ERROR, message: codeName });
    this.span.end();
  }
}

/**
 * Starts a client span for one request to an outside service, child of
 * the active span (the RPC's, when the request is made for one).
 */
export function startClientSpan(tracer: Tracer, name: string, attributes: Attributes): Span {
  return tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes });
}

/** Ends a client span with its outcome; `failed` marks it an error. */
export function endClientSpan(span: Span, attributes: Attributes, failed: boolean): void {
  span.setAttributes(attributes);
  if (failed) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}
