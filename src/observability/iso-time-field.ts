/**
 * pino's `timestamp` option: the `,"time":"<ISO 8601>"` field of a line,
 * formatted once per millisecond. A busy server writes many lines within one
 * millisecond, and formatting the date was a quarter of a line's cost.
 */
export function isoTimeField(now: () => number = Date.now): () => string {
  let formattedAt = Number.NaN;
  let field = '';
  return () => {
    const ms = now();
    if (ms !== formattedAt) {
      formattedAt = ms;
      field = `,"time":"${new Date(ms).toISOString()}"`;
    }
    return field;
  };
}
