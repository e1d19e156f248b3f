/**
 * The trace a call belongs to, as its caller sent it: a W3C `traceparent`
 * header, or Google's older `x-cloud-trace-context`. Only well-formed
 * values are accepted; a malformed header is ignored as if absent, so no
 * raw header text ever reaches a log line or a span.
 */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** The caller's span: 16 lowercase hex digits, not all zero; absent when the header named none. */
  spanId?: string;
  /** The caller sampled this trace. */
  sampled: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const CLOUD_TRACE = /^([0-9a-fA-F]{32})(?:\/(\d{1,20}))?(?:;o=([0-9]+))?$/;
const MAX_UINT64 = (1n << 64n) - 1n;
/** Longest header worth parsing: a traceparent is 55 characters, an x-cloud-trace-context at most ~60. */
const MAX_HEADER_LENGTH = 512;

/**
 * Parses a W3C trace context `traceparent` (version 00, and later versions
 * by their first four fields as the spec asks); undefined when malformed.
 */
export function parseTraceparent(header: string): TraceContext | undefined {
  if (header.length > MAX_HEADER_LENGTH) return undefined;
  const match = TRACEPARENT.exec(header);
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  // ff is forbidden; version 00 has exactly four fields.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (isZero(traceId) || isZero(spanId)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/**
 * Parses Google's `x-cloud-trace-context: TRACE_ID/SPAN_ID;o=OPTIONS`
 * (span ID in decimal, converted to 16 hex digits); undefined when malformed.
 */
export function parseCloudTraceContext(header: string): TraceContext | undefined {
  if (header.length > MAX_HEADER_LENGTH) return undefined;
  const match = CLOUD_TRACE.exec(header);
  if (!match) return undefined;
  const traceId = (match[1] as string).toLowerCase();
  if (isZero(traceId)) return undefined;
  let spanId: string | undefined;
  if (match[2] !== undefined) {
    const decimal = BigInt(match[2]);
    if (decimal === 0n || decimal > MAX_UINT64) return undefined;
    spanId = decimal.toString(16).padStart(16, '0');
  }
  return { traceId, spanId, sampled: match[3] === '1' };
}

/**
 * The call's trace context from its `traceparent` or, failing that, its
 * `x-cloud-trace-context` header values (undefined when absent). Only a
 * single, well-formed header counts.
 */
export function traceContextOf(traceparent: unknown, cloudTraceContext: unknown): TraceContext | undefined {
  if (typeof traceparent === 'string') {
    const parsed = parseTraceparent(traceparent);
    if (parsed) return parsed;
  }
  return typeof cloudTraceContext === 'string' ? parseCloudTraceContext(cloudTraceContext) : undefined;
}

/**
 * The fields Google Cloud Logging reads to attach a log entry to a trace
 * (`logging.googleapis.com/trace`, `.../spanId`, `.../trace_sampled`).
 */
export function cloudLoggingTraceFields(projectId: string, trace: TraceContext): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    'logging.googleapis.com/trace': `projects/${projectId}/traces/${trace.traceId}`,
    'logging.googleapis.com/trace_sampled': trace.sampled,
  };
  if (trace.spanId !== undefined) fields['logging.googleapis.com/spanId'] = trace.spanId;
  return fields;
}

function isZero(hex: string): boolean {
  return /^0+$/.test(hex);
}
