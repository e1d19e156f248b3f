// Before any Google client exists: no credential lookup may probe the GCE metadata server, and
// clientSettings() alone must reach the emulator, without the env var the client would prefer.
process.env.METADATA_SERVER_DETECTION = 'none';
delete process.env.FIRESTORE_EMULATOR_HOST;

import { expect } from 'chai';
import { Firestore } from '@google-cloud/firestore';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FirestoreEmulator } from '../src/local/firestore-emulator';

const PROJECT = 'emulator-selftest';

/** Whether any process of the group exists, zombies included. */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error: unknown) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error: unknown) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('FirestoreEmulator', () => {
  describe('running', () => {
    let emulator: FirestoreEmulator;
    let firestore: Firestore;

    before(async () => {
      emulator = await FirestoreEmulator.start({ projectId: PROJECT });
    });

    after(async () => {
      await emulator?.stop();
    });

    beforeEach(() => {
      firestore = new Firestore(emulator.clientSettings());
    });

    afterEach(async () => {
      await firestore.terminate();
    });

    it('listens on a loopback port for the project asked for', () => {
      expect(emulator.host).to.match(/^127\.0\.0\.1:\d+$/);
      expect(emulator.projectId).to.equal(PROJECT);
    });

    it('stores and reads a document through the real client with clientSettings()', async () => {
      const doc = firestore.collection('grants').doc('user-1');
      await doc.set({ scopes: ['openid'], version: 1 });
      const snapshot = await doc.get();
      expect(snapshot.data()).to.deep.equal({ scopes: ['openid'], version: 1 });
    });

    it('wipe() deletes every document of the project', async () => {
      await firestore.collection('grants').doc('user-2').set({ version: 1 });
      await firestore.collection('other').doc('x').set({ a: true });
      await emulator.wipe();
      expect((await firestore.collection('grants').get()).empty).to.equal(true);
      expect((await firestore.collection('other').get()).empty).to.equal(true);
    });
  });

  describe('stop', () => {
    it('leaves no process of its group behind, and can be called again', async () => {
      const emulator = await FirestoreEmulator.start({ projectId: PROJECT });
      try {
        expect(groupExists(emulator.pgid)).to.equal(true);
        await emulator.stop();
        expect(groupExists(emulator.pgid)).to.equal(false);
      } finally {
        await emulator.stop();
      }
    });
  });

  describe('failures', () => {
    let sdkRoot: string;

    beforeEach(() => {
      sdkRoot = mkdtempSync(join(tmpdir(), 'fake-sdk-'));
    });

    afterEach(() => {
      rmSync(sdkRoot, { recursive: true, force: true });
    });

    /** Puts a stand-in launcher script where the SDK keeps the emulator. */
    function fakeLauncher(body: string): void {
      const folder = join(sdkRoot, 'platform', 'cloud-firestore-emulator');
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, 'cloud_firestore_emulator'), `#!/bin/sh\n${body}\n`);
      chmodSync(join(folder, 'cloud_firestore_emulator'), 0o755);
    }

    it('says what is missing and how to install it when sdkRoot has no emulator', async () => {
      const error = await rejection(FirestoreEmulator.start({ sdkRoot }));
      expect(error.message).to.contain(`Firestore emulator not found at ${sdkRoot}/platform/cloud-firestore-emulator/cloud_firestore_emulator`);
      expect(error.message).to.contain('apt-get install google-cloud-cli-firestore-emulator');
      expect(error.message).to.contain('Java 17');
    });

    it('reports the exit and the last output lines when the emulator dies while starting', async () => {
      fakeLauncher('echo "Exception: port already in use" >&2\nexit 3');
      const error = await rejection(FirestoreEmulator.start({ sdkRoot }));
      expect(error.message).to.contain('exited before it was ready (exit code 3)');
      expect(error.message).to.contain('Exception: port already in use');
    });

    it('gives up after startTimeoutMs and stops what it started', async () => {
      fakeLauncher('echo starting\necho $$ > "$(dirname "$0")/pid"\nexec sleep 30');
      const started = Date.now();
      const error = await rejection(FirestoreEmulator.start({ sdkRoot, startTimeoutMs: 300 }));
      expect(error.message).to.match(/not ready on 127\.0\.0\.1:\d+ after 300 ms/);
      expect(error.message).to.contain('starting');
      expect(Date.now() - started).to.be.lessThan(5000);
      const pid = Number(readFileSync(join(sdkRoot, 'platform', 'cloud-firestore-emulator', 'pid'), 'utf8'));
      expect(groupExists(pid), 'the launcher leads its own group and is gone').to.equal(false);
    });

    it('checks its options up front', async () => {
      expect((await rejection(FirestoreEmulator.start({ projectId: 'Bad Project' }))).message).to.contain('projectId');
      expect((await rejection(FirestoreEmulator.start({ startTimeoutMs: 0 }))).message).to.contain('startTimeoutMs');
    });
  });
});
