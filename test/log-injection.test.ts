import { expect } from 'chai';
import { capturedLogLines } from './support/log-capture';
import { useStack } from './support/stack';

const FORGED = '\r\n{"severity":"ERROR","event":"forged","message":"injected"}\r\n';

describe('log injection', () => {
  const stack = useStack();

  it('keeps every log line one JSON object when inputs carry CR/LF and fake log lines', async () => {
    const before = capturedLogLines.length;
    const settle = (p: Promise<unknown>) => p.then(
      () => undefined,
      () => undefined,
    );
    await settle(stack.client.exchangeCode({ authCode: `4/0code${FORGED}`, redirectUri: `https://app.example/cb${FORGED}` }));
    await settle(stack.client.getAccessToken({ userId: `123${FORGED}`, scopes: [`openid${FORGED}`] }));
    await settle(stack.client.getAccessToken({ userId: '123', scopes: [`https://www.googleapis.com/auth/drive${FORGED}`] }));
    await settle(stack.client.getProfile({ userId: FORGED }));
    const lines = capturedLogLines.slice(before);
    expect(lines.length, 'the refused calls were logged').to.be.greaterThan(0);
    for (const line of lines) {
      expect(line).to.not.match(/[\r\n]/);
      const entry = JSON.parse(line) as { event?: string };
      expect(entry.event).to.not.equal('forged');
    }
  });
});
