/**
 * The pacing rules at simulated times: the 60-second message bound and the 24-hour recipient bound hold for many
 * random schedules of many senders, deferral names the moment capacity returns, leases cap concurrency and expire,
 * and a sender that follows the answers gets the full configured rate.
 */
import type { TableEntityResult } from '@azure/data-tables';
import { fromPacerEntity, toPacerEntity, type PacerEntity } from '../../shared/pacing/pacerRow';
import {
  checkedLimits,
  decideRenewal,
  decideReservation,
  EMPTY_PACING_STATE,
  pacingStatus,
  releaseLease,
  type PacerLimits,
  type PacingDecision,
  type PacingState,
} from '../../shared/pacing/pacingRules';
import { DECISION_VALID_MS } from '../../shared/pacing/messageWindow';
import {
  EXCHANGE_RECIPIENT_WINDOW_MS,
  RECIPIENT_BUCKET_MS,
  RECIPIENT_WINDOW_MS,
} from '../../shared/pacing/recipientWindow';

const MINUTE = 60_000;
/** A bucket-aligned start time, so expected deferrals are easy to state. */
const T0 = Math.ceil(1_750_000_000_000 / RECIPIENT_BUCKET_MS) * RECIPIENT_BUCKET_MS;

/** Deterministic PRNG (mulberry32), so a failing seed can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Grant {
  at: number;
  recipients: number;
}

interface Simulation {
  grants: Grant[];
  maxHeld: number;
  answers: Record<PacingDecision['kind'], number>;
}

/**
 * Runs `senders` senders against one mailbox's state from `T0` until `until`. Each sender tries, holds a grant's
 * lease for a random time (sometimes never releasing it, like a crashed instance), and tries again after a random
 * gap; when told to wait, or given a slot, it mostly comes back when told (up to the allowed lateness after a slot),
 * sometimes early (a caller ignoring the answer) and sometimes much later.
 */
function simulate(
  limits: PacerLimits,
  seed: number,
  senders: number,
  until: number,
  maxRecipients: number,
): Simulation {
  const random = prng(seed);
  let state: PacingState = EMPTY_PACING_STATE;
  const grants: Grant[] = [];
  const held = new Map<string, number>(); // lease id -> expiry as the simulation sees it
  const answers = { granted: 0, scheduled: 0, wait: 0, deferred: 0, tooManyRecipients: 0 };
  let maxHeld = 0;
  type Event =
    | { at: number; sender: number; slotAt?: number; recipients?: number }
    | { at: number; release: string; grantedAt: number; recipients: number };
  const events: Event[] = Array.from({ length: senders }, (_, sender) => ({
    at: T0 + Math.floor(random() * 10_000),
    sender,
  }));
  let nextLease = 0;
  while (events.length > 0) {
    events.sort((x, y) => x.at - y.at);
    const event = events.shift()!;
    if (event.at > until) break;
    const now = event.at;
    for (const [id, expiresAt] of held) if (expiresAt <= now) held.delete(id);
    if ('release' in event) {
      held.delete(event.release);
      const released = { leaseId: event.release, grantedAt: event.grantedAt, recipients: event.recipients };
      state = releaseLease(state, released, now).next ?? state;
      continue;
    }
    // A mail holding a slot is the same mail: its recipients were counted with the slot.
    const recipients = event.recipients ?? 1 + Math.floor(random() * maxRecipients);
    const id = `lease-${nextLease++}`;
    const step = decideReservation(state, limits, recipients, now, id, event.slotAt);
    const decision = step.result;
    answers[decision.kind]++;
    state = step.next ?? state;
    let again: number;
    let slotAt: number | undefined;
    if (decision.kind === 'granted') {
      grants.push({ at: now, recipients });
      held.set(id, decision.expiresAt);
      maxHeld = Math.max(maxHeld, held.size);
      if (random() < 0.9) {
        events.push({ at: now + Math.floor(random() * 2 * limits.leaseMs), release: id, grantedAt: now, recipients });
      }
      again = now + (random() < 0.5 ? 0 : Math.floor(random() * 3 * MINUTE));
    } else if (decision.kind === 'scheduled') {
      // Back at the slot, or a little after it (a slow queue poll), sometimes early or much later.
      slotAt = decision.slotAt;
      const r = random();
      const late = Math.floor(random() * 2000);
      again = r < 0.8 ? slotAt + late : r < 0.9 ? now + Math.floor(random() * (slotAt - now)) : slotAt + 30 * late;
    } else if (decision.kind === 'wait') {
      slotAt = decision.slotAt;
      again = now + (random() < 0.8 ? decision.retryAfterMs : Math.floor(random() * decision.retryAfterMs));
    } else if (decision.kind === 'deferred') {
      again = random() < 0.8 ? decision.notBefore : now + Math.floor(random() * (decision.notBefore - now));
    } else {
      throw new Error('no simulated mail exceeds the daily budget');
    }
    events.push({
      at: Math.max(again, now + 1),
      sender: event.sender,
      ...(slotAt !== undefined ? { slotAt, recipients } : {}),
    });
  }
  return { grants, maxHeld, answers };
}

/** The most grants in any half-open window [t, t + width) starting at a grant. */
function busiestWindow(grants: Grant[], width: number, weight: (g: Grant) => number, closed = false): number {
  const sorted = [...grants].sort((x, y) => x.at - y.at);
  let best = 0;
  for (let i = 0; i < sorted.length; i++) {
    let sum = 0;
    for (
      let j = i;
      j < sorted.length && (closed ? sorted[j].at <= sorted[i].at + width : sorted[j].at < sorted[i].at + width);
      j++
    ) {
      sum += weight(sorted[j]);
    }
    best = Math.max(best, sum);
  }
  return best;
}

const limits = (overrides: Partial<PacerLimits> = {}): PacerLimits =>
  checkedLimits({
    messagesPerMinute: 30,
    recipientsPerDay: 10_000,
    maxConcurrent: 4,
    leaseMs: 5 * MINUTE,
    ...overrides,
  });

function grant(state: PacingState, l: PacerLimits, recipients: number, now: number, id = `at-${now}`): PacingState {
  const step = decideReservation(state, l, recipients, now, id);
  expect(step.result.kind).toBe('granted');
  return step.next!;
}

function grantHeld(state: PacingState, l: PacerLimits, now: number, slotAt: number): PacingState {
  const step = decideReservation(state, l, 1, now, `held-${now}`, slotAt);
  expect(step.result.kind).toBe('granted');
  return step.next!;
}

/** A mail granted at `now` whose Graph call is answered and released at once: counted at `now`, no lease left. */
function send(state: PacingState, l: PacerLimits, now: number, id: string, slotAt?: number): PacingState {
  const step = decideReservation(state, l, 1, now, id, slotAt);
  expect(step.result.kind).toBe('granted');
  return releaseLease(step.next!, { leaseId: id, grantedAt: now, recipients: 1 }, now).next!;
}

describe('message rate (a schedule of slots, a sliding minute)', () => {
  it('never grants more than messagesPerMinute in any 60-second window, for 200 random schedules', () => {
    const rates = [1, 2, 7, 30, 45, 100, 600];
    let scheduled = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const messagesPerMinute = rates[seed % rates.length];
      const l = limits({
        messagesPerMinute,
        recipientsPerDay: 1_000_000,
        maxConcurrent: 1 + (seed % 6),
        leaseMs: 20_000,
      });
      const run = simulate(l, seed, 1 + (seed % 9), T0 + 15 * MINUTE, 5);
      const busiest = busiestWindow(run.grants, MINUTE, () => 1);
      if (busiest > messagesPerMinute)
        throw new Error(`seed ${seed}: ${busiest} grants in 60 s > ${messagesPerMinute}`);
      expect(run.maxHeld).toBeLessThanOrEqual(l.maxConcurrent);
      scheduled += run.answers.scheduled;
    }
    // With a burst tolerance a light schedule may never be given a slot; the runs as a whole are.
    expect(scheduled).toBeGreaterThan(1000);
  });

  it('lets 30 mails to a quiet mailbox go at once, and holds the 31st until the first leave the minute', () => {
    const l = limits({ maxConcurrent: 100 }); // leases are not the point here
    let state = EMPTY_PACING_STATE;
    for (let i = 0; i < 30; i++) state = send(state, l, T0 + i, `burst-${i}`);
    // The 31st has the next slot, one interval on, and holding it waits for the sliding minute.
    const step = decideReservation(state, l, 1, T0 + 30, 'x');
    expect(step.result).toEqual({ kind: 'scheduled', slotAt: T0 + 2070 });
    state = step.next!;
    const back = decideReservation(state, l, 1, T0 + 2070, 'x', T0 + 2070);
    expect(back.result).toEqual({
      kind: 'wait',
      reason: 'rate',
      retryAfterMs: MINUTE + 1100 - 2070,
      slotAt: T0 + 2070,
    });
    expect(decideReservation(state, l, 1, T0 + MINUTE + 1100, 'x', T0 + 2070).result.kind).toBe('granted');
  });

  it('gives a mailbox quiet for a while its burst back, a slot at a time', () => {
    const l = limits({ maxConcurrent: 100 });
    let state = EMPTY_PACING_STATE;
    for (let i = 0; i < 30; i++) state = send(state, l, T0, `a-${i}`);
    // Ten intervals after the minute freed, ten more slots than the one due have come back: eleven go at once.
    const later = T0 + MINUTE + 1100 + 10 * 2070;
    let granted = 0;
    for (let i = 0; ; i++) {
      const step = decideReservation(state, l, 1, later, `b-${i}`);
      if (step.result.kind !== 'granted') break;
      state = step.next!;
      granted++;
    }
    expect(granted).toBeGreaterThanOrEqual(11);
    expect(granted).toBeLessThanOrEqual(30);
  });

  it('reaches at least 60 s / 62.1 s of the rate for a sender that comes back when told (30 per minute, 10 minutes)', () => {
    const l = limits();
    let state = EMPTY_PACING_STATE;
    let now = T0;
    const grants: Grant[] = [];
    let slotAt: number | undefined;
    while (now < T0 + 10 * MINUTE) {
      const step = decideReservation(state, l, 1, now, `m${grants.length}`, slotAt);
      state = step.next ?? state;
      if (step.result.kind === 'granted') {
        grants.push({ at: now, recipients: 1 });
        slotAt = undefined;
        state = releaseLease(state, { leaseId: step.result.leaseId, grantedAt: now, recipients: 1 }, now).next!;
      } else if (step.result.kind === 'scheduled') {
        now = slotAt = step.result.slotAt;
      } else {
        expect(step.result).toMatchObject({ kind: 'wait', reason: 'rate' });
        if (step.result.kind === 'wait') now += step.result.retryAfterMs;
      }
    }
    // The first 30 at once (the burst), then the sliding minute sets the pace; never more than 30 in 60 s.
    expect(grants.slice(0, 30).every((g) => g.at === T0)).toBe(true);
    expect(busiestWindow(grants, MINUTE, () => 1)).toBe(30);
    expect(grants.length / 300).toBeGreaterThan(0.96);
  });

  it('lets a holder go at its slot although the holder N slots before it went a second late (the slack)', () => {
    const l = limits({ maxConcurrent: 100 }); // 30 per minute; leases are not the point here
    // A burst long gone puts the schedule's next slot at T0 (TAT − τ = T0) with the minute empty; 31 mails then ask
    // at once and get slots T0, T0 + T, ...
    let state: PacingState = { ...EMPTY_PACING_STATE, messageTatUs: T0 * 1000 + 29 * 2_070_000 };
    const slots: number[] = [];
    for (let i = 0; i <= 30; i++) {
      const step = decideReservation(state, l, 1, T0 - 1000, `s${i}`);
      state = step.next!;
      if (step.result.kind === 'scheduled') slots.push(step.result.slotAt);
    }
    expect(slots).toHaveLength(31);
    // The first comes back a second late, all the others exactly at their slots: none has to wait.
    state = send(state, l, slots[0] + 1000, 'h0', slots[0]);
    for (let i = 1; i <= 30; i++) state = send(state, l, slots[i], `h${i}`, slots[i]);
  });

  it('gives each waiting mail its own slot, at the exact time, for rates that do not divide a minute', () => {
    const l = limits({ messagesPerMinute: 7 }); // T = 62.1 s / 7 = 8871.428… ms, kept to the microsecond
    // One mail at T0 with the burst used up (TAT as if the whole burst of 7 had gone at T0): the next slot is T0 + T.
    let state: PacingState = { ...grant(EMPTY_PACING_STATE, l, 1, T0), messageTatUs: T0 * 1000 + 7 * 8_871_429 };
    const slots: number[] = [];
    for (let i = 0; i < 3; i++) {
      const step = decideReservation(state, l, 1, T0 + 1000, `w${i}`);
      expect(step.result.kind).toBe('scheduled');
      if (step.result.kind === 'scheduled') slots.push(step.result.slotAt);
      state = step.next!;
    }
    expect(slots).toEqual([T0 + 8872, T0 + 17743, T0 + 26615]);
    // A holder early for its slot waits for it, still holding it; at its slot it goes without a new slot.
    expect(decideReservation(state, l, 1, T0 + 8000, 'x', slots[0]).result).toEqual({
      kind: 'wait',
      reason: 'rate',
      retryAfterMs: 872,
      slotAt: slots[0],
    });
    const onTime = decideReservation(state, l, 1, slots[0] + 500, 'x', slots[0]);
    expect(onTime.result.kind).toBe('granted');
    expect(onTime.next!.messageTatUs).toBe(state.messageTatUs);
    // However late a holder comes back, it keeps its place.
    expect(decideReservation(state, l, 1, slots[0] + 10 * MINUTE, 'y', slots[0]).result.kind).toBe('granted');
  });

  it('holds late holders that bunch up to the sliding minute, and says when it frees', () => {
    const l = limits({ messagesPerMinute: 3, leaseMs: 1000 });
    let state = EMPTY_PACING_STATE;
    const slots: number[] = [];
    for (let i = 0; i < 5; i++) {
      const step = decideReservation(state, l, 1, T0, `s${i}`);
      state = step.next!;
      slots.push(step.result.kind === 'scheduled' ? step.result.slotAt : T0);
    }
    // All five come back together, two minutes late: three go, the fourth waits for the first bucket to leave.
    const back = T0 + 2 * MINUTE + 40_000;
    for (let i = 0; i < 3; i++) state = grantHeld(state, l, back + i, slots[i + 1]);
    expect(decideReservation(state, l, 1, back + 10, 'x', slots[4]).result).toEqual({
      kind: 'wait',
      reason: 'rate',
      retryAfterMs: MINUTE + 1100 - 10,
      slotAt: slots[4],
    });
    expect(decideReservation(state, l, 1, back + MINUTE + 1100, 'x', slots[4]).result.kind).toBe('granted');
  });
});

/**
 * Senders whose mail reaches Graph some time after the grant, as in the outbox: the submission starts mostly at once,
 * sometimes seconds later (a busy instance) or much later (a large draft's uploads), and a decision older than
 * `DECISION_VALID_MS` by then is renewed first (or given back, the mail asking again later). Graph accepts the mail up
 * to 5 s after the submission starts (more than the window's 1 s margin), answers up to 1 s later, and the lease is
 * released up to 3 s after that. Returns Graph's acceptance times.
 */
function simulateSubmissions(l: PacerLimits, seed: number, senders: number, until: number): number[] {
  const random = prng(seed);
  let state: PacingState = EMPTY_PACING_STATE;
  const accepted: number[] = [];
  type Grant = { leaseId: string; grantedAt: number; recipients: number };
  type Event =
    | { at: number; kind: 'ask'; sender: number; slotAt?: number }
    | { at: number; kind: 'submit' | 'release'; sender: number; grant: Grant };
  const events: Event[] = Array.from({ length: senders }, (_, sender) => ({ at: T0, kind: 'ask', sender }));
  let nextLease = 0;
  const upTo = (ms: number) => Math.floor(random() * ms);
  const startsAfter = () => {
    const r = random();
    return r < 0.7 ? upTo(1000) : r < 0.9 ? upTo(5000) : upTo(90_000);
  };
  while (events.length > 0) {
    events.sort((x, y) => x.at - y.at);
    const event = events.shift()!;
    if (event.at > until) break;
    const now = event.at;
    if (event.kind === 'ask') {
      const leaseId = `lease-${nextLease++}`;
      const step = decideReservation(state, l, 1, now, leaseId, event.slotAt);
      state = step.next ?? state;
      const d = step.result;
      if (d.kind === 'granted') {
        const grant = { leaseId, grantedAt: now, recipients: 1 };
        events.push({ at: now + startsAfter(), kind: 'submit', sender: event.sender, grant });
      } else if (d.kind === 'scheduled' || d.kind === 'wait') {
        const back = d.kind === 'scheduled' ? d.slotAt : now + d.retryAfterMs;
        events.push({ at: back + upTo(2000), kind: 'ask', sender: event.sender, slotAt: d.slotAt });
      } else {
        throw new Error(`unexpected ${d.kind}`);
      }
    } else if (event.kind === 'submit') {
      let grant = event.grant;
      if (now - grant.grantedAt > DECISION_VALID_MS) {
        const step = decideRenewal(state, l, grant, now);
        state = step.next ?? state;
        if (step.result.kind === 'wait') {
          events.push({ at: now + step.result.retryAfterMs, kind: 'ask', sender: event.sender });
          continue;
        }
        grant = { ...grant, grantedAt: step.result.grantedAt };
      }
      const acceptedAt = now + upTo(5000);
      accepted.push(acceptedAt);
      if (random() < 0.05) {
        // The release never lands (its write failed, or the instance died after Graph accepted): the lease expires.
        events.push({ at: acceptedAt + upTo(3000), kind: 'ask', sender: event.sender });
        continue;
      }
      events.push({ at: acceptedAt + upTo(1000) + upTo(3000), kind: 'release', sender: event.sender, grant });
    } else {
      state = releaseLease(state, event.grant, now).next ?? state;
      events.push({ at: now + 1 + upTo(3000), kind: 'ask', sender: event.sender });
    }
  }
  return accepted;
}

describe('the time from decision to Graph (counted until the release, then at it; stale decisions renewed)', () => {
  it('never lets Graph accept more than messagesPerMinute in any 60 s, whatever the delays, for 100 random runs', () => {
    const rates = [2, 7, 30, 60];
    let renewedSome = 0;
    for (let seed = 1; seed <= 100; seed++) {
      const messagesPerMinute = rates[seed % rates.length];
      const l = limits({ messagesPerMinute, recipientsPerDay: 1_000_000, maxConcurrent: 4, leaseMs: 2 * MINUTE });
      const accepted = simulateSubmissions(l, seed, 2 + (seed % 7), T0 + 10 * MINUTE);
      const busiest = busiestWindow(
        accepted.map((at) => ({ at, recipients: 1 })),
        MINUTE,
        () => 1,
      );
      if (busiest > messagesPerMinute)
        throw new Error(`seed ${seed}: ${busiest} accepted in 60 s > ${messagesPerMinute}`);
      if (accepted.length > messagesPerMinute * 5) renewedSome++;
    }
    expect(renewedSome).toBeGreaterThan(50); // the runs did send at a real rate, not trickle
  });

  it('counts a mail whose release never came (a failed write, a crash after Graph accepted) until its lease expires', () => {
    const l = limits({ messagesPerMinute: 2, maxConcurrent: 4 });
    // 'lost' goes to Graph at T0 + 5 s, say, but its release never lands: the row still counts it at its decision.
    let state = grant(EMPTY_PACING_STATE, l, 1, T0, 'lost');
    state = send(state, l, T0 + 1000, 'b');
    // Both decisions have left the sliding minute; Graph's minute (T0 + 5 s, T0 + 65 s] may hold 'lost' already.
    const later = T0 + 62_200;
    state = send(state, l, later, 'c');
    const full = decideReservation(state, l, 1, later + 100, 'd');
    expect(full.result).toEqual({ kind: 'wait', reason: 'rate', retryAfterMs: MINUTE + 1100 - 100 });
    expect(pacingStatus(state, l, later + 100).nextSlotAt).toBe(later + MINUTE + 1100);
    // A renewal is held to the same count.
    const renewed = decideRenewal(state, l, { leaseId: 'x', grantedAt: later - 30_000, recipients: 1 }, later + 100);
    expect(renewed.result.kind).toBe('wait');
    // Once the lease has expired the mail is no longer counted: Graph has answered it or never will.
    const expired = T0 + l.leaseMs;
    const freed = decideReservation(state, l, 1, expired, 'e');
    expect(freed.result.kind).toBe('granted');
    // Two such leases fill a minute of 2 by themselves: room comes back at the first expiry.
    let two = grant(grant(EMPTY_PACING_STATE, l, 1, T0, 'l1'), l, 1, T0 + 10, 'l2');
    two = { ...two, messageTatUs: 0 };
    expect(decideReservation(two, l, 1, T0 + 2 * MINUTE, 'f').result).toEqual({
      kind: 'wait',
      reason: 'rate',
      retryAfterMs: l.leaseMs - 2 * MINUTE,
    });
  });

  it('moves a renewed message and its recipients to the renewal, and keeps its lease', () => {
    const l = limits({ messagesPerMinute: 2 });
    let state = grant(EMPTY_PACING_STATE, l, 3, T0, 'a');
    const step = decideRenewal(state, l, { leaseId: 'a', grantedAt: T0, recipients: 3 }, T0 + 20_000);
    expect(step.result).toEqual({ kind: 'granted', grantedAt: T0 + 20_000, expiresAt: T0 + 20_000 + l.leaseMs });
    state = step.next!;
    expect(state.messageBuckets).toEqual([[Math.floor((T0 + 20_000) / 100), 1]]);
    expect(pacingStatus(state, l, T0 + 20_000)).toMatchObject({ recipientsInWindow: 3, activeLeases: 1 });
  });

  it('gives a stale grant back whole when the minute filled meanwhile, and says when it frees', () => {
    // While its lease lives a stale grant is counted (at its decision, then as in flight), so the minute can only fill
    // without it once the lease has expired: a 20 s lease here, an instance stalled for a minute.
    const l = limits({ messagesPerMinute: 2, leaseMs: 20_000 });
    // Granted at T0, then two more granted in the minute (the bench's 31st mail: sent late, counted early).
    let state = grant(EMPTY_PACING_STATE, l, 1, T0, 'stale');
    state = grant(state, l, 1, T0 + 62_000, 'b');
    state = grantHeld(state, l, T0 + 62_500, T0 + 62_500);
    const step = decideRenewal(state, l, { leaseId: 'stale', grantedAt: T0, recipients: 1 }, T0 + 63_000);
    expect(step.result).toEqual({ kind: 'wait', reason: 'rate', retryAfterMs: 62_000 + 61_100 - 63_000 });
    expect(pacingStatus(step.next!, l, T0 + 63_000)).toMatchObject({ activeLeases: 2, recipientsInWindow: 2 });
  });
});

describe('daily recipients (sliding 24 h)', () => {
  it('never lets any 24-hour window exceed recipientsPerDay, for 100 random schedules over three days', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const recipientsPerDay = 50 + (seed % 7) * 150;
      const l = limits({ messagesPerMinute: 60, recipientsPerDay, leaseMs: 60_000 });
      const run = simulate(l, 1000 + seed, 1 + (seed % 5), T0 + 3 * RECIPIENT_WINDOW_MS, 40);
      const busiest = busiestWindow(run.grants, RECIPIENT_WINDOW_MS, (g) => g.recipients, true);
      if (busiest > recipientsPerDay)
        throw new Error(`seed ${seed}: ${busiest} recipients in 24 h > ${recipientsPerDay}`);
      expect(run.answers.deferred).toBeGreaterThan(0);
    }
  });

  it('is not fooled the way GCRA with cost = recipients is: a full burst keeps the mailbox shut for 24 h', () => {
    const l = limits({ recipientsPerDay: 100, messagesPerMinute: 600, maxConcurrent: 10 });
    let state = EMPTY_PACING_STATE;
    for (let i = 0; i < 10; i++) state = grant(state, l, 10, T0 + i * 200);
    // GCRA with cost would have drained 12 h of "debt" by now and admitted 50 more recipients.
    const halfDay = decideReservation(state, l, 1, T0 + 12 * 60 * MINUTE, 'x').result;
    expect(halfDay).toEqual({
      kind: 'deferred',
      reason: 'dailyRecipients',
      notBefore: T0 + RECIPIENT_WINDOW_MS + RECIPIENT_BUCKET_MS,
    });
  });

  it('defers until the bucket holding enough recipients leaves the window, and grants from then on', () => {
    const l = limits({ recipientsPerDay: 100 });
    let state = grant(EMPTY_PACING_STATE, l, 40, T0);
    state = grant(state, l, 40, T0 + 7 * MINUTE); // the next bucket
    expect(decideReservation(state, l, 20, T0 + 20 * MINUTE, 'fits').result.kind).toBe('granted');

    const notBefore = T0 + RECIPIENT_WINDOW_MS + RECIPIENT_BUCKET_MS; // the first bucket stops counting
    expect(decideReservation(state, l, 30, T0 + 20 * MINUTE, 'x').result).toEqual({
      kind: 'deferred',
      notBefore,
      reason: 'dailyRecipients',
    });
    expect(decideReservation(state, l, 30, notBefore - 1, 'x').result).toMatchObject({ kind: 'deferred', notBefore });
    expect(decideReservation(state, l, 30, notBefore, 'x').result.kind).toBe('granted');
    // 70 recipients need both buckets gone: the second leaves one bucket later.
    expect(decideReservation(state, l, 70, notBefore, 'x').result).toMatchObject({
      notBefore: notBefore + RECIPIENT_BUCKET_MS,
    });
  });

  it('uses at least 95% of the daily budget for a sender that retries when told', () => {
    const l = limits({ maxConcurrent: 100 }); // 30 per minute; leases are not the point here, 10,000 recipients per day
    let state = EMPTY_PACING_STATE;
    let now = T0;
    const grants: Grant[] = [];
    let slotAt: number | undefined;
    while (now < T0 + 3 * RECIPIENT_WINDOW_MS) {
      const step = decideReservation(state, l, 10, now, `m${grants.length}`, slotAt);
      const r = step.result;
      state = step.next ?? state;
      if (r.kind === 'granted') {
        grants.push({ at: now, recipients: 10 });
        slotAt = undefined;
        state = releaseLease(state, { leaseId: r.leaseId, grantedAt: now, recipients: 10 }, now).next!;
      } else if (r.kind === 'scheduled') now = slotAt = r.slotAt;
      else if (r.kind === 'wait') now += r.retryAfterMs;
      else if (r.kind === 'deferred') now = r.notBefore;
    }
    const total = grants.reduce((sum, g) => sum + g.recipients, 0);
    expect(total / 3).toBeGreaterThanOrEqual(0.95 * l.recipientsPerDay);
    expect(busiestWindow(grants, RECIPIENT_WINDOW_MS, (g) => g.recipients, true)).toBeLessThanOrEqual(10_000);
  });

  it("keeps a mail whose release never came counted for Exchange's whole 24 hours from its acceptance", () => {
    const l = limits({ recipientsPerDay: 10, maxConcurrent: 100 });
    // Decided at the very end of a bucket, accepted by Graph 4 minutes later (a slow upload), release lost.
    const decidedAt = T0 + RECIPIENT_BUCKET_MS - 1;
    const acceptedAt = decidedAt + 4 * MINUTE;
    const state = grant(EMPTY_PACING_STATE, l, 10, decidedAt, 'lost');
    // A day after the decision but not yet a day after the acceptance: Exchange still counts those 10.
    const step = decideReservation(state, l, 1, decidedAt + EXCHANGE_RECIPIENT_WINDOW_MS + MINUTE, 'next');
    expect(step.result).toMatchObject({ kind: 'deferred', reason: 'dailyRecipients' });
    if (step.result.kind === 'deferred')
      expect(step.result.notBefore).toBeGreaterThan(acceptedAt + EXCHANGE_RECIPIENT_WINDOW_MS);
  });

  it('keeps the row small: a mail every minute for 25 hours leaves at most 290 buckets', () => {
    const l = limits({ recipientsPerDay: 1_000_000, messagesPerMinute: 2 });
    let state = EMPTY_PACING_STATE;
    for (let now = T0; now < T0 + RECIPIENT_WINDOW_MS + 60 * MINUTE; now += MINUTE) {
      state = releaseLease(grant(state, l, 1, now, 'x'), { leaseId: 'x', grantedAt: now, recipients: 1 }, now).next!;
    }
    expect(state.recipientBuckets.length).toBeLessThanOrEqual(290);
    const entity = toPacerEntity('m', state);
    expect(entity.recipientBuckets.length).toBeLessThan(8_000); // a property may hold 32K UTF-16 characters
  });

  it('refuses a mail over the whole daily budget outright', () => {
    const l = limits({ recipientsPerDay: 100 });
    expect(decideReservation(EMPTY_PACING_STATE, l, 101, T0, 'x').result).toEqual({
      kind: 'tooManyRecipients',
      recipientsPerDay: 100,
    });
    expect(decideReservation(EMPTY_PACING_STATE, l, 100, T0, 'x').result.kind).toBe('granted');
  });
});

describe('concurrency leases', () => {
  it('holds at most maxConcurrent, frees a released lease at once and an unreleased one at expiry', () => {
    const l = limits({ maxConcurrent: 2, leaseMs: MINUTE, messagesPerMinute: 6000 });
    let state = grant(EMPTY_PACING_STATE, l, 1, T0, 'a');
    state = grant(state, l, 1, T0 + 20, 'b');
    const full = decideReservation(state, l, 1, T0 + 40, 'c');
    expect(full.result).toEqual({ kind: 'wait', reason: 'concurrency', retryAfterMs: 250 });
    expect(full.next).toBeUndefined();

    const a = { leaseId: 'a', grantedAt: T0, recipients: 1 };
    const released = releaseLease(state, a, T0 + 50).next!;
    expect(released.leases.map((x) => x.id)).toEqual(['b']);
    expect(releaseLease(released, a, T0 + 51).next).toBeUndefined(); // idempotent: nothing to write
    expect(decideReservation(released, l, 1, T0 + 60, 'c').result.kind).toBe('granted');

    // Nobody releases (crashed instances): the slots come back when the leases expire.
    expect(decideReservation(state, l, 1, T0 + MINUTE - 1, 'c').result.kind).toBe('wait');
    const afterExpiry = decideReservation(state, l, 1, T0 + MINUTE + 30, 'c');
    expect(afterExpiry.result.kind).toBe('granted');
    expect(afterExpiry.next!.leases.map((x) => x.id)).toEqual(['c']);
  });

  it('looks again after 250 ms when every lease is held, or at the first expiry if that is sooner', () => {
    const l = limits({ maxConcurrent: 1, leaseMs: 200, messagesPerMinute: 600 });
    const state = { ...grant(EMPTY_PACING_STATE, l, 1, T0), messageTatUs: 0 };
    expect(decideReservation(state, l, 1, T0 + 100, 'x').result).toEqual({
      kind: 'wait',
      reason: 'concurrency',
      retryAfterMs: 100,
    });
    const long = limits({ maxConcurrent: 1, leaseMs: MINUTE, messagesPerMinute: 600 });
    const held = { ...grant(EMPTY_PACING_STATE, long, 1, T0), messageTatUs: 0 };
    expect(decideReservation(held, long, 1, T0 + 100, 'x').result).toMatchObject({ retryAfterMs: 250 });
    // A slot holder waiting for a lease keeps its slot.
    expect(decideReservation(held, long, 1, T0 + 100, 'x', T0 + 50).result).toEqual({
      kind: 'wait',
      reason: 'concurrency',
      retryAfterMs: 250,
      slotAt: T0 + 50,
    });
  });
});

describe('status and input', () => {
  it('peeks at the next slot, the recipients in the window and the leases held', () => {
    const l = limits();
    const state = grant(grant(EMPTY_PACING_STATE, l, 7, T0, 'a'), l, 3, T0 + 2100, 'b');
    expect(pacingStatus(state, l, T0 + 2500)).toEqual({
      nextSlotAt: T0 + 2500, // two of a burst of 30 used: the next may go now
      recipientsInWindow: 10,
      recipientsRemaining: 9_990,
      activeLeases: 2,
      limits: l,
    });
    expect(pacingStatus(state, l, T0 + RECIPIENT_WINDOW_MS + RECIPIENT_BUCKET_MS)).toMatchObject({
      nextSlotAt: T0 + RECIPIENT_WINDOW_MS + RECIPIENT_BUCKET_MS,
      recipientsInWindow: 0,
      activeLeases: 0,
    });
  });

  it('refuses recipients and limits that are not positive integers, naming them', () => {
    expect(() => decideReservation(EMPTY_PACING_STATE, limits(), 0, T0, 'x')).toThrow(
      /recipients must be a positive integer/,
    );
    expect(() => decideReservation(EMPTY_PACING_STATE, limits(), 1.5, T0, 'x')).toThrow(/recipients/);
    expect(() => limits({ messagesPerMinute: 0 })).toThrow(/messagesPerMinute must be a positive integer, got 0/);
    expect(() => limits({ leaseMs: Number.NaN })).toThrow(/leaseMs/);
  });

  it('round-trips the row and fails loudly on a row it did not write', () => {
    const state = grant(EMPTY_PACING_STATE, limits(), 5, T0, 'a');
    const entity = toPacerEntity('alerts%40contoso.com', state);
    expect(entity.messageTatUs).toEqual({ value: state.messageTatUs, type: 'Double' });
    const stored = { ...entity, messageTatUs: state.messageTatUs, etag: 'W/"1"' } as TableEntityResult<PacerEntity>;
    expect(fromPacerEntity(stored)).toEqual(state);
    expect(state.leases).toEqual([{ id: 'a', expiresAt: T0 + 5 * MINUTE, countedAt: T0 }]);
    // A row written before leases said when their message was counted: counted from when the lease was taken.
    const older = fromPacerEntity({ ...stored, leases: JSON.stringify([{ id: 'a', expiresAt: T0 + 5 * MINUTE }]) });
    expect(pacingStatus(older, limits({ messagesPerMinute: 1 }), T0 + 2 * MINUTE).nextSlotAt).toBe(T0 + 5 * MINUTE);
    expect(() => fromPacerEntity({ ...stored, leases: '[{"id":"a","expiresAt":1,"countedAt":"x"}]' })).toThrow(
      /malformed/,
    );
    expect(() => fromPacerEntity({ ...stored, leases: '[{"id":1}]' })).toThrow(
      /mailbox pacing row alerts%40contoso.com is malformed/,
    );
    expect(() => fromPacerEntity({ ...stored, recipientBuckets: 'nope' })).toThrow(/malformed/);
  });
});
