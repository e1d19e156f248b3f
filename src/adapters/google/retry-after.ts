/**
 * Reads an HTTP `Retry-After` value (RFC 9110 section 10.2.3): either
 * delta-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`).
 * Returns the wait in milliseconds (0 for a date already past), or
 * undefined when the header is absent or unreadable.
 *
 * @param value the header value, null or undefined when absent
 * @param nowMs the wall clock an HTTP-date is measured against
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Only the three date forms (IMF-fixdate, RFC 850, asctime), which start with a day name:
  // Date.parse also reads bare numbers and other shapes a server should not send.
  if (!/^[A-Za-z]{3,9},? /.test(trimmed)) return undefined;
  // HTTP-dates are GMT; asctime names no zone, and Date.parse would read it as local time.
  const at = Date.parse(/(GMT|UTC)$/i.test(trimmed) ? trimmed : `${trimmed} GMT`);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
