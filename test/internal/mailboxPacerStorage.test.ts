/**
 * The mailbox pacer against real Table storage (Azurite, @azure/data-tables): two pacers with their own
 * TableClients, as two instances of the app would have, hammered from many async callers at once. ETag races
 * really happen (the pacers count their 412/409 retries), and still no 60-second window gets more than the rate
 * and no moment holds more than maxConcurrent leases.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { TableClient } from '@azure/data-tables';
import {
  MailboxPacer,
  PacerContentionError,
  type MailboxPacerOptions,
  type PacerLease,
  type Reservation,
} from '../../shared/pacing/mailboxPacer';
import { RECIPIENT_BUCKET_MS, RECIPIENT_WINDOW_MS } from '../../shared/pacing/recipientWindow';
import { azuriteConnectionString } from '../support/testEnv';
import { meddledTableClient } from '../support/meddledTable';

const TABLE = 'mailboxpacerpublic';
const MINUTE = 60_000;

function tableClient(): TableClient {
  return TableClient.fromConnectionString(azuriteConnectionString(), TABLE, { allowInsecureConnection: true });
}

/** Two pacers over two clients of one table: two instances of the app. */
function twoInstances(options: MailboxPacerOptions): [MailboxPacer, MailboxPacer] {
  return [new MailboxPacer(tableClient(), options), new MailboxPacer(tableClient(), options)];
}

/** Releases, trying again while other writers keep winning (an outbox would do the same). */
async function releaseSurely(pacer: MailboxPacer, lease: PacerLease, clock: () => number = Date.now): Promise<void> {
  for (;;) {
    try {
      return await pacer.release(lease, clock());
    } catch (err) {
      if (!(err instanceof PacerContentionError)) throw err;
    }
  }
}

let mailboxCount = 0;
/** A mailbox of its own per test (one pacing row each); mixed case, as callers write addresses. */
const freshMailbox = () => `Sender${++mailboxCount}-${Date.now()}@Contoso.com`;

/** The most grants in any half-open window [t, t + width). */
function busiestWindow(times: number[], width: number): number {
  const sorted = [...times].sort((x, y) => x - y);
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j] < sorted[i] + width) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

describe('MailboxPacer on Table storage, shared by instances', () => {
  it('two instances with 16 callers never grant more than messagesPerMinute in any 60-second window', async () => {
    // Time runs 20 times faster than the wall clock so that minutes pass in seconds: 30 per minute is one grant
    // every 103 ms of real time; each caller is given its own slot and comes back at it, holding it.
    const speedup = 20;
    const started = Date.now();
    const clock = () => started + (Date.now() - started) * speedup;
    const pacers = twoInstances({ messagesPerMinute: 30, recipientsPerDay: 10_000 });
    const mailbox = freshMailbox();
    const grantedAt: number[] = [];
    const target = 70; // more than two minutes' worth at 30 per minute
    let contention = 0;

    const caller = async (pacer: MailboxPacer) => {
      let slotAt: number | undefined;
      while (grantedAt.length < target) {
        let answer: Reservation;
        try {
          // The clock itself, as the outbox passes it: each read-decide-write round decides at its own time. A time
          // read once before the call goes stale over the rounds a burst's contention takes (seconds here, at 20×),
          // and a stale decision can miss a bucket a newer write already dropped.
          answer = await pacer.reserve(mailbox, 1, clock, slotAt);
        } catch (err) {
          if (!(err instanceof PacerContentionError)) throw err;
          contention++;
          continue;
        }
        if (answer.kind === 'granted') {
          grantedAt.push(answer.lease.grantedAt);
          slotAt = undefined;
          await releaseSurely(pacer, answer.lease, clock);
        } else if (answer.kind === 'scheduled') {
          slotAt = answer.slotAt;
          await sleep(Math.max(0, answer.slotAt - clock()) / speedup);
        } else if (answer.kind === 'wait') {
          slotAt = answer.slotAt;
          await sleep(answer.retryAfterMs / speedup);
        } else {
          throw new Error(`unexpected ${answer.kind}`);
        }
      }
    };
    await Promise.all(pacers.flatMap((pacer) => Array.from({ length: 8 }, () => caller(pacer))));

    expect(grantedAt.length).toBeGreaterThanOrEqual(target);
    expect(busiestWindow(grantedAt, MINUTE)).toBeLessThanOrEqual(30);
    expect(pacers[0].conflictRetries + pacers[1].conflictRetries).toBeGreaterThan(0);
    expect(contention).toBeLessThan(grantedAt.length); // retries resolve races; giving up stays rare
    const status = await pacers[1].peek(mailbox.toLowerCase(), clock());
    expect(status).toMatchObject({ recipientsInWindow: grantedAt.length, activeLeases: 0 });
  });

  it('lets 30 mails to a quiet mailbox go within seconds from two instances; the 31st waits for the window', async () => {
    // Time runs 5 times faster than the wall clock, so the window passes in 12 s; 31 mails ask at once, 16 and 15 on
    // the two instances, each releasing its lease at once (a quick Graph call).
    const speedup = 5;
    const started = Date.now();
    const clock = () => started + (Date.now() - started) * speedup;
    const pacers = twoInstances({ messagesPerMinute: 30, recipientsPerDay: 10_000 });
    const mailbox = freshMailbox();
    const grantedAt: number[] = [];

    const mail = async (pacer: MailboxPacer) => {
      let slotAt: number | undefined;
      for (;;) {
        let answer: Reservation;
        try {
          answer = await pacer.reserve(mailbox, 1, clock, slotAt);
        } catch (err) {
          if (!(err instanceof PacerContentionError)) throw err;
          continue;
        }
        if (answer.kind === 'granted') {
          grantedAt.push(answer.lease.grantedAt);
          return releaseSurely(pacer, answer.lease, clock);
        }
        if (answer.kind === 'scheduled') {
          slotAt = answer.slotAt;
          await sleep(Math.max(0, answer.slotAt - clock()) / speedup);
        } else if (answer.kind === 'wait') {
          slotAt = answer.slotAt ?? slotAt;
          // Every lease held: wait for a release in this instance, as the outbox does.
          if (answer.reason === 'concurrency') await pacer.leaseFreed(mailbox, answer.retryAfterMs / speedup);
          else await sleep(answer.retryAfterMs / speedup);
        } else {
          throw new Error(`unexpected ${answer.kind}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 31 }, (_, i) => mail(pacers[i % 2])));

    const sorted = [...grantedAt].sort((x, y) => x - y);
    expect(sorted).toHaveLength(31);
    // The 30th within seconds of the start (simulated; storage round trips count five times over here).
    expect(sorted[29] - started).toBeLessThan(25_000);
    // The 31st only once the first grants leave the sliding 61 s count.
    expect(sorted[30] - sorted[0]).toBeGreaterThanOrEqual(61_000);
    expect(busiestWindow(sorted, MINUTE)).toBeLessThanOrEqual(30);
  });

  it('two instances with 16 callers never hold more than 4 leases at once', async () => {
    // A rate far above what storage can serve, so concurrency is the only limit in play.
    const pacers = twoInstances({ messagesPerMinute: 6_000_000, recipientsPerDay: 1_000_000, leaseMs: MINUTE });
    const mailbox = freshMailbox();
    let held = 0;
    let mostHeld = 0;
    let timesFull = 0;
    let grants = 0;
    const target = 40;

    const caller = async (pacer: MailboxPacer) => {
      let slotAt: number | undefined;
      while (grants < target) {
        let answer: Reservation;
        try {
          answer = await pacer.reserve(mailbox, 1, Date.now(), slotAt);
        } catch (err) {
          if (!(err instanceof PacerContentionError)) throw err;
          continue;
        }
        if (answer.kind === 'granted') {
          slotAt = undefined;
          grants++;
          mostHeld = Math.max(mostHeld, ++held);
          if (held === 4) timesFull++;
          // The "Graph call" lasts until all 4 slots have been taken since this grant, so the limit is reached
          // however slow storage is, and a fifth grant, if the pacer allowed one, would be seen.
          const fullBefore = timesFull;
          while (timesFull === fullBefore && held < 4 && grants < target) await sleep(5);
          await sleep(20);
          held--; // before releasing: the row frees the slot only after this, so `held` never over-counts
          await releaseSurely(pacer, answer.lease);
        } else if (answer.kind === 'scheduled' || answer.kind === 'wait') {
          // A slot too: two mails in the same millisecond are still 10 µs apart.
          slotAt = answer.slotAt;
          await sleep(Math.min(answer.kind === 'wait' ? answer.retryAfterMs : answer.slotAt - Date.now(), 20));
        } else {
          throw new Error(`unexpected ${answer.kind}`);
        }
      }
    };
    await Promise.all(pacers.flatMap((pacer) => Array.from({ length: 8 }, () => caller(pacer))));

    expect(mostHeld).toBeLessThanOrEqual(4);
    expect(mostHeld).toBe(4); // the limit was reached, so the bound above was really tested
    expect(pacers[0].conflictRetries + pacers[1].conflictRetries).toBeGreaterThan(0);
    expect((await pacers[0].peek(mailbox)).activeLeases).toBe(0);
  });

  it('frees a slot on release (from any instance, twice is harmless) and when a lease expires', async () => {
    const [a, b] = twoInstances({ messagesPerMinute: 600, recipientsPerDay: 100, maxConcurrent: 2, leaseMs: MINUTE });
    const mailbox = freshMailbox();
    const now = Date.now();
    // 600 per minute: slots 103.3 ms apart, so each reserve below finds the rate free.
    const first = await a.reserve(mailbox, 1, now);
    const second = await b.reserve(mailbox, 1, now + 200);
    expect([first.kind, second.kind]).toEqual(['granted', 'granted']);
    expect(await a.reserve(mailbox, 1, now + 400)).toEqual({ kind: 'wait', reason: 'concurrency', retryAfterMs: 250 });

    if (first.kind !== 'granted') throw new Error('unreachable');
    await b.release(first.lease, now + 450);
    await a.release(first.lease, now + 460);
    expect((await a.peek(mailbox, now + 470)).activeLeases).toBe(1);
    const third = await a.reserve(mailbox, 1, now + 600);
    expect(third.kind).toBe('granted');
    expect(await b.reserve(mailbox, 1, now + 800)).toMatchObject({ kind: 'wait', reason: 'concurrency' });

    // The second holder "crashed" and never releases: a minute after its grant the slot is back.
    expect(await b.reserve(mailbox, 1, now + 200 + MINUTE - 1)).toMatchObject({ kind: 'wait', reason: 'concurrency' });
    const afterExpiry = await b.reserve(mailbox, 1, now + 200 + MINUTE);
    expect(afterExpiry.kind).toBe('granted');
    expect((await a.peek(mailbox, now + 200 + MINUTE + 2)).activeLeases).toBe(2); // the third's and this one
  });

  it('counts recipients across instances: defers past the daily budget, refuses a mail over all of it', async () => {
    const [a, b] = twoInstances({ messagesPerMinute: 600, recipientsPerDay: 10 });
    const mailbox = freshMailbox();
    const now = Date.now();
    expect((await a.reserve(mailbox, 8, now)).kind).toBe('granted');
    const deferred = await b.reserve(mailbox.toUpperCase(), 3, now + 1000);
    expect(deferred).toMatchObject({ kind: 'deferred', reason: 'dailyRecipients' });
    if (deferred.kind !== 'deferred') throw new Error('unreachable');
    // The 8 recipients leave the count (Exchange's 24 h and a 5-minute margin) within one more 5-minute bucket.
    expect(deferred.notBefore).toBeGreaterThan(now + RECIPIENT_WINDOW_MS);
    expect(deferred.notBefore).toBeLessThanOrEqual(now + RECIPIENT_WINDOW_MS + RECIPIENT_BUCKET_MS);
    expect(RECIPIENT_WINDOW_MS).toBe(24 * 60 * MINUTE + 5 * MINUTE);
    expect(await a.reserve(mailbox, 11, now)).toEqual({ kind: 'tooManyRecipients', recipientsPerDay: 10 });
    expect(await b.peek(mailbox, now + 2000)).toMatchObject({
      recipientsInWindow: 8,
      recipientsRemaining: 2,
      nextSlotAt: now + 2000,
    });
    expect((await b.reserve(mailbox, 3, deferred.notBefore)).kind).toBe('granted');
    expect(await a.peek(mailbox, deferred.notBefore)).toMatchObject({ recipientsInWindow: 3, activeLeases: 1 }); // the first lease expired long ago
  });

  it('decides on the row it last wrote: a reserve and its release cost one write each, until another instance writes', async () => {
    const options = { messagesPerMinute: 600, recipientsPerDay: 1_000, maxConcurrent: 1 };
    const mailbox = freshMailbox();
    const [a, b] = twoInstances(options);
    await a.peek(mailbox); // creates the table; the row does not exist yet, and `a` keeps that
    const methods = ['getEntity', 'createEntity', 'updateEntity'] as const;
    const spies = methods.map((m) => jest.spyOn(TableClient.prototype, m));
    const calls = (): Record<string, number> =>
      Object.fromEntries(methods.map((m, i) => [m, spies[i].mock.calls.length]));
    try {
      const t = Date.now();
      const first = await a.reserve(mailbox, 1, t);
      if (first.kind !== 'granted') throw new Error(`expected a grant, got ${first.kind}`);
      await a.release(first.lease, t + 10);
      const second = await a.reserve(mailbox, 1, t + 200);
      if (second.kind !== 'granted') throw new Error(`expected a grant, got ${second.kind}`);
      await a.release(second.lease, t + 210);
      // No reads at all: the insert, then three writes each on the ETag of the one before.
      expect(calls()).toEqual({ getEntity: 0, createEntity: 1, updateEntity: 3 });
      expect(a.conflictRetries).toBe(0);

      // Another instance takes the only lease: `a`'s kept row says it is free, so its write must fail (412),
      // and `a` decides again on the row as it is: every lease held, nothing written.
      const held = await b.reserve(mailbox, 1, t + 400);
      if (held.kind !== 'granted') throw new Error(`expected a grant, got ${held.kind}`);
      expect(await a.reserve(mailbox, 1, t + 500)).toMatchObject({ kind: 'wait', reason: 'concurrency' });
      expect(a.conflictRetries).toBe(1);
      expect(await a.peek(mailbox, t + 500)).toMatchObject({ activeLeases: 1 });
      // `b`'s release, decided on the row `b` wrote, is written; `a` then gets the lease.
      await b.release(held.lease, t + 600);
      expect(b.conflictRetries).toBe(0);
      expect((await a.reserve(mailbox, 1, t + 700)).kind).toBe('granted');
      expect(await b.peek(mailbox, t + 700)).toMatchObject({ activeLeases: 1 });
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });

  it("one instance's concurrent calls for a mailbox take turns: no failed writes, one write each, nothing lost", async () => {
    const options = { messagesPerMinute: 6_000, recipientsPerDay: 10_000, maxConcurrent: 4 };
    const mailbox = freshMailbox();
    const pacer = new MailboxPacer(tableClient(), options);
    await pacer.peek(mailbox);
    const spies = (['getEntity', 'createEntity', 'updateEntity'] as const).map((m) =>
      jest.spyOn(TableClient.prototype, m),
    );
    try {
      const t = Date.now();
      // 12 mails at once from one process, as one host's invocations: 4 granted, the rest wait for a lease.
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => pacer.reserve(mailbox, 1, t + i)));
      const leases = answers.flatMap((a) => (a.kind === 'granted' ? [a.lease] : []));
      expect(leases).toHaveLength(4);
      expect(answers.filter((a) => a.kind === 'wait' && a.reason === 'concurrency')).toHaveLength(8);
      await Promise.all(leases.map((lease, i) => pacer.release(lease, t + 100 + i)));
      expect(pacer.conflictRetries).toBe(0);
      // The first grant inserts the row; 3 more grants and 4 releases each write once; no reads (the kept row is
      // under a second old for the 8 waits).
      expect(spies.map((s) => s.mock.calls.length)).toEqual([0, 1, 7]);
      expect(await pacer.peek(mailbox, t + 200)).toMatchObject({ activeLeases: 0, recipientsInWindow: 4 });
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
  });

  it('a release decided on a stale kept row is never written: it is decided again on the fresh row', async () => {
    const options = { messagesPerMinute: 600, recipientsPerDay: 1_000, maxConcurrent: 4 };
    const mailbox = freshMailbox();
    const [a, b] = twoInstances(options);
    const t = Date.now();
    const mine = await a.reserve(mailbox, 2, t);
    const theirs = await b.reserve(mailbox, 3, t + 50);
    if (mine.kind !== 'granted' || theirs.kind !== 'granted') throw new Error('expected two grants');
    // `a` kept the row without `b`'s lease; writing its release on that row would drop `b`'s lease and count.
    await a.release(mine.lease, t + 100);
    expect(a.conflictRetries).toBe(1);
    expect(await b.peek(mailbox, t + 100)).toMatchObject({ activeLeases: 1, recipientsInWindow: 5 });
    await b.release(theirs.lease, t + 150);
    expect(await a.peek(mailbox, t + 150)).toMatchObject({ activeLeases: 0, recipientsInWindow: 5 });
  });

  it('gives up with PacerContentionError when another writer changes the row on every attempt', async () => {
    const options = { messagesPerMinute: 600, recipientsPerDay: 100, maxAttempts: 3 };
    const mailbox = freshMailbox();
    const now = Date.now();
    expect((await new MailboxPacer(tableClient(), options).reserve(mailbox, 1, now)).kind).toBe('granted');

    // Every read is followed by another instance's write, so every If-Match fails with a real 412.
    const meddled = meddledTableClient(tableClient);
    const pacer = new MailboxPacer(meddled, options);
    await expect(pacer.reserve(mailbox, 1, now + 1000)).rejects.toThrow(PacerContentionError);
    expect(pacer.conflictRetries).toBe(3);
  });
});
