import { Timestamp } from '@google-cloud/firestore';
import { expect } from 'chai';
import { runKeepAlive } from '../src/app';
import { loadConfig } from '../src/config/config';
import { captureLogs } from './support/log-capture';
import { ManualClock } from './support/manual-clock';
import { useStack } from './support/stack';

const DAY = 24 * 3600_000;

describe('keep-alive job', function () {
  this.timeout(30_000);
  const stack = useStack();

  it('refreshes every active grant unused for too long, at the set rate, marks the dead ones, and leaves the rest', async () => {
    const [a, b, c, recent] = [stack.newUser(), stack.newUser(), stack.newUser(), stack.newUser()];
    for (const user of [a, b, c, recent]) await stack.signIn(user);
    stack.google.revokeUser(b.sub); // B removed our access at Google
    const jobClock = new ManualClock();
    jobClock.advance(151 * DAY);
    await stack.db.collection(stack.collection).doc(recent.sub).update({ last_refreshed_at: Timestamp.fromMillis(jobClock.now() - DAY) });
    stack.google.resetStats();

    const config = loadConfig(stack.env);
    const options = { unusedForMs: 150 * DAY, refreshesPerSecond: 4, pageSize: 2 };
    const started = Date.now();
    const first = await runKeepAlive(config, options, { clock: jobClock, logDestination: captureLogs() });
    const elapsed = Date.now() - started;
    expect(first).to.include({ scanned: 4, due: 3, refreshed: 2, dead: 1, failed: 0 });
    expect(stack.google.stats().refreshToken).to.equal(3);
    // Three refreshes at 4 per second are spread over at least two intervals of 250 ms.
    expect(elapsed).to.be.at.least(450);
    expect(await stack.rawDocument(b.sub)).to.include({ status: 'REAUTH_REQUIRED', dead_reason: 'invalid_grant' });
    const refreshedAt = ((await stack.rawDocument(a.sub))?.last_refreshed_at as Timestamp).toMillis();
    expect(refreshedAt).to.equal(jobClock.now());

    stack.google.resetStats();
    const second = await runKeepAlive(config, options, { clock: jobClock, logDestination: captureLogs() });
    expect(second).to.include({ scanned: 4, due: 0, refreshed: 0 });
    expect(stack.google.stats().refreshToken).to.equal(0);
  });
});
