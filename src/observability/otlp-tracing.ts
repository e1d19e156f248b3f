import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Tracing, TracingConfig } from './tracing';

/**
 * Tracing with the OpenTelemetry SDK, exporting over OTLP/HTTP (JSON) in
 * batches. Loaded only through startTracing when an exporter is configured.
 *
 * The tracer provider belongs to this service instance and is not made the
 * global one (several services in one process keep their own; client
 * libraries that trace through the global API stay silent). The context
 * manager, which carries the active span across awaits, is process-wide by
 * nature: the first instance registers it and it stays for the process.
 */
export function startOtlpTracing(config: TracingConfig): Tracing {
  // False when one is registered already (another instance): that one serves.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const exporter = new OTLPTraceExporter({ url: `${config.endpoint.replace(/\/+$/, '')}/v1/traces`, timeoutMillis: 10_000 });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'tokenbroker' }),
    // A caller's sampling decision is followed; traces starting here are sampled at the configured rate.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.samplePercent / 100) }),
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  });
  return { tracer: provider.getTracer('tokenbroker'), shutdown: () => provider.shutdown() };
}
