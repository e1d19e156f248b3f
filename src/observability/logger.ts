import pino from 'pino';

/**
 * The logging surface the service uses: structured fields first, then a
 * message. Fields must never hold a token, code, secret or key.
 */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

/** Log levels accepted by configuration. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Cloud Logging's names for pino's levels (it reads WARN and FATAL as DEFAULT). */
const SEVERITY: Record<string, string> = { trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL' };

/**
 * Builds the JSON logger: one object per line on `destination` (stdout by
 * default), with `severity` as Google Cloud Logging reads it. Stdout is
 * written synchronously so the last lines before an exit are not lost.
 * Successful calls log only the audit line of an issued token.
 */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      messageKey: 'message',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ severity: SEVERITY[label] ?? 'DEFAULT' }) },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
