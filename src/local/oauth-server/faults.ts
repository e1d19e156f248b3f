import type { FaultEndpoint, FaultSpec } from './types';

interface PendingFault {
  spec: FaultSpec;
  remaining: number;
}

/**
 * Faults waiting to hit their endpoint. Several faults on one endpoint apply in the
 * order they were injected, each for its own number of requests, so a test can script
 * "two 503s, then a slow answer".
 */
export class FaultQueue {
  private readonly pending = new Map<FaultEndpoint, PendingFault[]>();

  /** Queues `spec` behind any fault already waiting on the same endpoint. */
  add(spec: FaultSpec): void {
    const times = spec.times ?? 1;
    if (!Number.isInteger(times) || times < 1) {
      throw new RangeError(`fault times must be a positive integer, got ${String(spec.times)}`);
    }
    if (spec.kind === 'status' && (!Number.isInteger(spec.status) || spec.status < 100 || spec.status > 599)) {
      throw new RangeError(`fault status must be an HTTP status code, got ${String(spec.status)}`);
    }
    if (spec.kind === 'delay' && !(spec.ms >= 0)) {
      throw new RangeError(`fault delay must be a non-negative number of ms, got ${String(spec.ms)}`);
    }
    if (spec.kind === 'missing-fields' && (spec.fields.length === 0 || spec.fields.some((field) => field === ''))) {
      throw new RangeError('a missing-fields fault must name at least one field, none of them empty');
    }
    const queue = this.pending.get(spec.endpoint) ?? [];
    queue.push({ spec, remaining: times });
    this.pending.set(spec.endpoint, queue);
  }

  /** Consumes one use of the fault due for this request, if any. */
  take(endpoint: FaultEndpoint): FaultSpec | undefined {
    const queue = this.pending.get(endpoint);
    const head = queue?.[0];
    if (queue === undefined || head === undefined) {
      return undefined;
    }
    head.remaining -= 1;
    if (head.remaining === 0) {
      queue.shift();
    }
    return head.spec;
  }

  /** Drops every pending fault. */
  clear(): void {
    this.pending.clear();
  }
}

/** Conventional OAuth `error` codes for injected HTTP statuses, so clients see a plausible body. */
export function errorCodeForStatus(status: number): string {
  if (status === 429) {
    return 'rate_limit_exceeded';
  }
  if (status === 503) {
    return 'temporarily_unavailable';
  }
  if (status >= 500) {
    return 'internal_failure';
  }
  return 'injected_fault';
}

/** `body` without `fields` when it is a JSON object; anything else unchanged. */
export function withoutFields(body: unknown, fields: readonly string[]): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return body;
  }
  const copy: Record<string, unknown> = { ...(body as Record<string, unknown>) };
  for (const field of fields) {
    delete copy[field];
  }
  return copy;
}

/**
 * A 200 body that is not JSON: a token response cut off mid-way, which is what a
 * proxy or a dropped connection tends to produce.
 */
export const MALFORMED_BODY = '{"access_token": "ya29.';
