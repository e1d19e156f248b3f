import { expect } from 'chai';
import { capturedLogLines, issuedSecrets, leakedSecrets } from './support/log-capture';

// Named to run last (.mocharc sorts spec files): it reads what every suite before it logged.
describe('log lines of the whole suite', () => {
  it('were captured, from many calls, including failures', () => {
    expect(capturedLogLines.length).to.be.greaterThan(100);
    expect(issuedSecrets.size).to.be.greaterThan(50);
    expect(capturedLogLines.some((line) => line.includes('"severity":"ERROR"'))).to.equal(true);
    expect(capturedLogLines.every((line) => JSON.parse(line) !== null)).to.equal(true);
  });

  it('contain no code, token, client secret or key the suite issued', () => {
    const leaks = capturedLogLines.flatMap((line) => leakedSecrets(line).map((secret) => ({ line, secret: `${secret.slice(0, 8)}…` })));
    expect(leaks).to.deep.equal([]);
  });
});
