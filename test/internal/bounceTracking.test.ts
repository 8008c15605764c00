/**
 * BounceTracking on its own: one attempt shared by concurrent mails of a mailbox, a failure logged and retried with
 * the next mail, and a mailbox found watched read again after REMEMBER_MS (a watch deleted meanwhile comes back).
 */
import { BounceTracking, REMEMBER_MS, type BounceWatcher } from '../../shared/outbox/bounces/bounceTracking';

function watcher(results: (() => Promise<string>)[]): BounceWatcher & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    watchForBounces(mailbox: string) {
      calls.push(mailbox);
      const next = results.shift() ?? (() => Promise.resolve('watched'));
      return next();
    },
  };
}

describe('BounceTracking', () => {
  it('makes one attempt for concurrent mails of a mailbox, whatever its casing', async () => {
    const w = watcher([]);
    const tracking = new BounceTracking(w, () => undefined);
    await Promise.all([tracking.ensure('Alerts@contoso.com'), tracking.ensure('alerts@contoso.com')]);
    await tracking.ensure('alerts@contoso.com');
    expect(w.calls).toEqual(['alerts@contoso.com']);
  });

  it('logs a failure without the mail waiting on it, and tries again with the next mail', async () => {
    const w = watcher([() => Promise.reject(new Error('storage-unavailable\nsecond line'))]);
    const warnings: string[] = [];
    const tracking = new BounceTracking(w, (message) => warnings.push(message));
    await expect(tracking.ensure('alerts@contoso.com')).resolves.toBeUndefined();
    expect(warnings).toEqual([
      'BOUNCE_TRACKING: could not watch alerts@contoso.com for bounces (Error: storage-unavailable); next mail retries',
    ]);
    await tracking.ensure('alerts@contoso.com');
    expect(w.calls).toHaveLength(2);
  });

  it('reads the watch again once REMEMBER_MS has passed, so a deleted watch comes back without a restart', async () => {
    let clock = 1_000_000;
    const w = watcher([]);
    const tracking = new BounceTracking(
      w,
      () => undefined,
      () => clock,
    );
    await tracking.ensure('alerts@contoso.com');
    clock += REMEMBER_MS - 1;
    await tracking.ensure('alerts@contoso.com');
    expect(w.calls).toHaveLength(1);
    clock += 1;
    await tracking.ensure('alerts@contoso.com');
    expect(w.calls).toHaveLength(2);
  });
});
