import { FirestoreEmulator } from '../../src/local/firestore-emulator';

// Google client libraries probe the metadata server when they look for
// credentials; nothing in the suite may leave the machine.
process.env.METADATA_SERVER_DETECTION = 'none';
for (const name of Object.keys(process.env)) {
  if (name.startsWith('GOOGLE_') || name === 'FIRESTORE_EMULATOR_HOST') delete process.env[name];
}

let emulator: FirestoreEmulator | undefined;

/** The Firestore emulator shared by the whole run (started once: it takes seconds). */
export function firestoreEmulator(): FirestoreEmulator {
  if (!emulator) throw new Error('the Firestore emulator is not running: load test/support/global-fixtures.ts through .mocharc');
  return emulator;
}

/** Mocha global setup: starts the emulator once for every suite. */
export async function mochaGlobalSetup(): Promise<void> {
  emulator = await FirestoreEmulator.start({ projectId: 'tokenbroker-test' });
}

/** How long the run may take to wind down once every suite is done. */
const WIND_DOWN_MS = 20_000;

/**
 * Mocha global teardown: stops the emulator's whole process group. Then, if
 * something still keeps the process alive after a while, names it and ends
 * the run with the tests' own result: a Firestore client whose operation a
 * store timeout gave up on (the outage tests do this on purpose) goes on
 * retrying it in the background for up to ten minutes against an emulator
 * that is gone, and the run must not wait for that.
 */
export async function mochaGlobalTeardown(): Promise<void> {
  await emulator?.stop();
  setTimeout(() => {
    process.stderr.write(`still running ${WIND_DOWN_MS / 1000} s after the last suite: ${process.getActiveResourcesInfo().join(', ')}; exiting\n`);
    process.exit(process.exitCode ?? 0);
  }, WIND_DOWN_MS).unref();
}
