import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { runResealGrants } from '../src/app';
import { loadConfig } from '../src/config/config';
import { issuedSecrets } from './support/log-capture';
import { KEYSET_SECRET_NAME, useStack, type KeysetSpec } from './support/stack';

const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';

function newKey(id: string) {
  const key = { id, key: randomBytes(32).toString('base64') };
  issuedSecrets.add(key.key);
  return key;
}

describe('encryption key rotation', function () {
  this.timeout(60_000);
  const k1 = newKey('k1');
  const k2 = newKey('k2');
  const stack = useStack({
    keyset: { primary: 'k1', keys: [k1] },
    // Replicas started later read the keyset's newest version, as after a rollout.
    env: { TOKENBROKER_ENCRYPTION_KEYSET: `${KEYSET_SECRET_NAME}/versions/latest` },
  });

  const keyIdOf = async (userId: string) => ((await stack.rawDocument(userId)) as { refresh_token: { key_id: string } }).refresh_token.key_id;
  const publishKeyset = (keyset: KeysetSpec) => stack.secretManager.addVersion(KEYSET_SECRET_NAME, JSON.stringify(keyset));

  it('reads old grants, seals new ones under the new primary, and rotate-keys re-seals the rest until none is left', async () => {
    const [a, b] = [stack.newUser(), stack.newUser()];
    await stack.signIn(a);
    await stack.signIn(b);
    expect(await keyIdOf(a.sub)).to.equal('k1');

    publishKeyset({ primary: 'k2', keys: [k1, k2] });
    const peer = await stack.startPeer();
    try {
      // Old records stay readable under the new keyset.
      await peer.client.getAccessToken({ userId: a.sub, scopes: [DRIVE] });
      const c = stack.newUser();
      await peer.client.exchangeCode({ authCode: stack.mintCode(c) });
      expect(await keyIdOf(c.sub)).to.equal('k2');

      const config = loadConfig(stack.env);
      const first = await runResealGrants(config, { pageSize: 1 });
      expect(first).to.include({ scanned: 3, resealed: 2, current: 1, unreadable: 0, failed: 0 });
      expect(await Promise.all([a, b, c].map((u) => keyIdOf(u.sub)))).to.deep.equal(['k2', 'k2', 'k2']);
      const second = await runResealGrants(config, { pageSize: 50 });
      expect(second).to.include({ scanned: 3, resealed: 0, current: 3 });
      // Resumed after the first user: only the rest is scanned.
      const resumed = await runResealGrants(config, { pageSize: 50, startAfter: first.lastUserId });
      expect(resumed.scanned).to.equal(0);
    } finally {
      await peer.close();
    }

    // The old key can now go: every grant opens with k2 alone.
    publishKeyset({ primary: 'k2', keys: [k2] });
    const lastPeer = await stack.startPeer();
    try {
      for (const user of [a, b]) {
        const token = await lastPeer.client.getAccessToken({ userId: user.sub, scopes: ['openid', DRIVE] });
        expect(token.accessToken).to.be.a('string').and.not.equal('');
      }
    } finally {
      await lastPeer.close();
    }
  });

  it('rotate-keys as a command: reports counts as JSON and exits 1 while a grant cannot be opened, leaving it untouched', async () => {
    const user = stack.newUser();
    await stack.signIn(user);
    const ref = stack.db.collection(stack.collection).doc(user.sub);
    await ref.update({ 'refresh_token.key_id': 'k0-lost' });
    const before = await stack.rawDocument(user.sub);
    // Asynchronously: the local Secret Manager the command reads from runs in this process.
    const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--require', 'tsx/cjs', 'src/main.ts', 'rotate-keys', '--page-size', '2'],
        { env: { PATH: process.env.PATH, METADATA_SERVER_DETECTION: 'none', ...stack.env, TOKENBROKER_LOG_LEVEL: 'warn' }, timeout: 30_000 },
        (err, stdout, stderr) => {
          const code = (err as { code?: unknown } | null)?.code;
          if (err && typeof code !== 'number') reject(err);
          else resolve({ status: typeof code === 'number' ? code : 0, stdout, stderr });
        },
      );
    });
    expect(result.status, result.stdout + result.stderr).to.equal(1);
    const report = JSON.parse(result.stdout.trim().split('\n').pop() as string) as Record<string, unknown>;
    expect(report).to.include({ job: 'rotate-keys', unreadable: 1, failed: 0 });
    expect(await stack.rawDocument(user.sub)).to.deep.equal(before);
    expect(result.stdout + result.stderr).to.include('"event":"reseal_unreadable"');
  });
});
