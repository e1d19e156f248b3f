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

/** Mocha global teardown: stops the emulator's whole process group. */
export async function mochaGlobalTeardown(): Promise<void> {
  await emulator?.stop();
}
