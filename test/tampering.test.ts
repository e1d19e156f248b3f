import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { capturedLogLines } from './support/log-capture';
import { expectGrpcError, useStack } from './support/stack';

const DRIVE = 'https://www.googleapis.com/auth/drive.readonly';

interface StoredBox {
  key_id: string;
  iv: Buffer;
  ciphertext: Buffer;
}

describe('a tampered refresh token', () => {
  const stack = useStack();

  /** Signs a user in, applies `tamper` to the stored box, and returns what is stored afterwards. */
  async function tamperedUser(tamper: (box: StoredBox, userId: string) => Promise<StoredBox>) {
    const user = stack.newUser();
    await stack.signIn(user);
    const doc = (await stack.rawDocument(user.sub)) as { refresh_token: StoredBox };
    const box = await tamper(doc.refresh_token, user.sub);
    await stack.db.collection(stack.collection).doc(user.sub).update({ refresh_token: box });
    return { user, stored: await stack.rawDocument(user.sub), box };
  }

  /** GetAccessToken must answer DATA_LOSS, leave the document as it is and log the failure without the ciphertext. */
  async function expectDataLoss(userId: string, stored: Record<string, unknown> | undefined, box: StoredBox) {
    const logsBefore = capturedLogLines.length;
    stack.google.resetStats();
    // A scope subset is never cached, so the stored refresh token must be opened.
    const { info } = await expectGrpcError(stack.client.getAccessToken({ userId, scopes: [DRIVE] }), status.DATA_LOSS, 'STORED_DATA_UNREADABLE');
    expect(stack.google.stats().refreshToken, 'nothing reached Google').to.equal(0);
    expect(await stack.rawDocument(userId)).to.deep.equal(stored);
    const lines = capturedLogLines.slice(logsBefore);
    expect(lines.some((line) => line.includes('"severity":"ERROR"') && line.includes('STORED_DATA_UNREADABLE') && line.includes('GetAccessToken'))).to.equal(true);
    for (const encoding of ['base64', 'base64url', 'hex'] as const) {
      const needle = box.ciphertext.toString(encoding).slice(0, 16);
      expect(lines.filter((line) => line.includes(needle)), `ciphertext (${encoding}) in a log line`).to.deep.equal([]);
    }
    return info;
  }

  it('with one flipped byte: DATA_LOSS, document untouched, logged without the ciphertext', async () => {
    const { user, stored, box } = await tamperedUser(async (b) => {
      const flipped = Buffer.from(b.ciphertext);
      flipped[5] = (flipped[5] as number) ^ 0x40;
      return { ...b, ciphertext: flipped };
    });
    await expectDataLoss(user.sub, stored, box);
  });

  it('truncated: DATA_LOSS, document untouched', async () => {
    const { user, stored, box } = await tamperedUser(async (b) => ({ ...b, ciphertext: b.ciphertext.subarray(0, 20) }));
    await expectDataLoss(user.sub, stored, box);
  });

  it('moved from another user\'s document: DATA_LOSS, document untouched', async () => {
    const other = stack.newUser();
    await stack.signIn(other);
    const { user, stored, box } = await tamperedUser(async () => ((await stack.rawDocument(other.sub)) as { refresh_token: StoredBox }).refresh_token);
    await expectDataLoss(user.sub, stored, box);
    // The other user's own grant still works.
    await stack.client.getAccessToken({ userId: other.sub, scopes: [DRIVE] });
  });

  it('under a key ID the keyset does not hold: DATA_LOSS naming the key ID, document untouched', async () => {
    const { user, stored, box } = await tamperedUser(async (b) => ({ ...b, key_id: 'retired-2024' }));
    const info = await expectDataLoss(user.sub, stored, box);
    expect(info?.metadata).to.include({ keyId: 'retired-2024' });
  });
});
