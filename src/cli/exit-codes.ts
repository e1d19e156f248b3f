/**
 * Process exit codes of the CLI. Scripts branch on them, so they are part of
 * the CLI's interface and the usage text documents them.
 */
export const EXIT = {
  /** The command did what was asked (health: the server is SERVING). */
  OK: 0,
  /** The service (or the local Google) answered with an error, or health is not SERVING. */
  SERVICE_ERROR: 1,
  /** The command line is wrong: unknown command or option, missing or malformed value. */
  USAGE: 2,
  /** Nothing answered: cannot connect, or no answer before the deadline. */
  UNREACHABLE: 3,
} as const;

/** One of the values of {@link EXIT}. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
