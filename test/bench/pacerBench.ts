/**
 * Pacer benchmark, against its own Azurite:
 * (a) reserve throughput on one mailbox with 1 and 4 pacers (instances, each with its own TableClient) calling at
 *     once, limits set out of reach so storage is the only bound: grants/s, ETag conflict retries, give-ups; beside
 *     it, in the same run, the same rules on an in-memory row (the cost of the decision alone);
 * (b) rate fidelity: 4 pacers × 4 callers on one mailbox at 30 messages per minute, on a clock running 10× fast:
 *     the busiest 60-second window (the goal: never above 30) and the achieved rate as a ratio of 30 (goal ≥ 0.95).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { TableClient } from '@azure/data-tables';
import { MailboxPacer, PacerContentionError } from '../../shared/pacing/mailboxPacer';
import { decideReservation, EMPTY_PACING_STATE, type PacerLimits } from '../../shared/pacing/pacingRules';
import { appRoot } from '../../shared/platform/packageInfo';
import { startAzurite } from '../emulators/azurite';

/** Limits no benchmark reaches: slots one microsecond apart (the smallest step), leases that lapse at once. */
const UNBOUNDED: PacerLimits = {
  messagesPerMinute: 6_000_000_000,
  recipientsPerDay: 1_000_000_000,
  maxConcurrent: 1_000,
  leaseMs: 1,
};
const SECONDS = 4;

/** Wall-clock time with sub-millisecond resolution, so a 1 µs interval does not cap grants at one per ms. */
const preciseNow = () => performance.timeOrigin + performance.now();

interface Throughput {
  name: string;
  grants: number;
  grantsPerSecond: number;
  conflictRetries: number;
  gaveUp: number;
}

async function storageThroughput(connectionString: string, pacerCount: number): Promise<Throughput> {
  const pacers = Array.from(
    { length: pacerCount },
    () =>
      new MailboxPacer(
        TableClient.fromConnectionString(connectionString, 'pacerbench', { allowInsecureConnection: true }),
        UNBOUNDED,
      ),
  );
  const mailbox = `bench-${randomUUID()}@contoso.com`;
  await pacers[0].peek(mailbox); // creates the table outside the measurement
  let grants = 0;
  let gaveUp = 0;
  const started = performance.now();
  const end = started + SECONDS * 1000;
  await Promise.all(
    pacers.map(async (pacer) => {
      while (performance.now() < end) {
        try {
          if ((await pacer.reserve(mailbox, 1, preciseNow())).kind === 'granted') grants++;
        } catch (err) {
          if (!(err instanceof PacerContentionError)) throw err;
          gaveUp++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    name: `Azurite, ${pacerCount} pacer${pacerCount > 1 ? 's' : ''} at once`,
    grants,
    grantsPerSecond: grants / seconds,
    conflictRetries: pacers.reduce((sum, p) => sum + p.conflictRetries, 0),
    gaveUp,
  };
}

function inMemoryThroughput(): Throughput {
  let state = EMPTY_PACING_STATE;
  let grants = 0;
  const started = performance.now();
  while (performance.now() < started + 1000) {
    const step = decideReservation(state, UNBOUNDED, 1, preciseNow(), randomUUID());
    state = step.next ?? state;
    if (step.result.kind === 'granted') grants++;
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    name: 'in memory (same rules, no storage)',
    grants,
    grantsPerSecond: grants / seconds,
    conflictRetries: 0,
    gaveUp: 0,
  };
}

/** Figures of the rate-fidelity run. */
interface Fidelity {
  grants: number;
  busiestMinute: number;
  ratioOfRate: number;
  conflictRetries: number;
}

async function rateFidelity(connectionString: string): Promise<Fidelity> {
  const speedup = 10;
  const virtualSeconds = 180;
  const started = Date.now();
  const clock = () => started + (Date.now() - started) * speedup;
  const end = started + virtualSeconds * 1000;
  const pacers = Array.from(
    { length: 4 },
    () =>
      new MailboxPacer(
        TableClient.fromConnectionString(connectionString, 'pacerbench', { allowInsecureConnection: true }),
        { messagesPerMinute: 30, recipientsPerDay: 10_000 },
      ),
  );
  const mailbox = `fidelity-${randomUUID()}@contoso.com`;
  const grantedAt: number[] = [];
  await Promise.all(
    pacers.flatMap((pacer) =>
      Array.from({ length: 4 }, async () => {
        let slotAt: number | undefined;
        while (clock() < end) {
          const answer = await pacer.reserve(mailbox, 1, clock(), slotAt).catch((err: unknown) => {
            if (err instanceof PacerContentionError) return undefined;
            throw err;
          });
          if (answer?.kind === 'granted') {
            slotAt = undefined;
            grantedAt.push(answer.lease.grantedAt);
            await pacer.release(answer.lease, clock());
          } else if (answer?.kind === 'scheduled') {
            // Back at its own slot, holding it (the outbox hides its queue message until then).
            slotAt = answer.slotAt;
            await sleep(Math.max(0, answer.slotAt - clock()) / speedup);
          } else if (answer?.kind === 'wait') {
            slotAt = answer.slotAt;
            await sleep(answer.retryAfterMs / speedup);
          }
        }
      }),
    ),
  );
  grantedAt.sort((x, y) => x - y);
  let busiestMinute = 0;
  for (let i = 0, j = 0; i < grantedAt.length; i++) {
    while (j < grantedAt.length && grantedAt[j] < grantedAt[i] + 60_000) j++;
    busiestMinute = Math.max(busiestMinute, j - i);
  }
  // The rate over the span the grants cover: from the first grant to one interval (60 s / 30) after the last.
  const spanMinutes = (grantedAt[grantedAt.length - 1] - grantedAt[0] + 2000) / 60_000;
  return {
    grants: grantedAt.length,
    busiestMinute,
    ratioOfRate: grantedAt.length / spanMinutes / 30,
    conflictRetries: pacers.reduce((sum, p) => sum + p.conflictRetries, 0),
  };
}

/** Runs the pacer benchmark on an Azurite of its own and prints its figures. */
export async function runPacerBench(): Promise<void> {
  const azurite = await startAzurite({ projectRoot: appRoot() });
  try {
    console.log(`\nPacer benchmark (a): reserve throughput on one mailbox for ${SECONDS} s, limits out of reach`);
    console.log(['pacer'.padEnd(40), 'grants', 'grants/s', 'conflict retries', 'gave up'].join('  '));
    const rows = [
      inMemoryThroughput(),
      await storageThroughput(azurite.connectionString, 1),
      await storageThroughput(azurite.connectionString, 4),
    ];
    for (const r of rows) {
      console.log(
        [
          r.name.padEnd(40),
          String(r.grants).padStart(6),
          r.grantsPerSecond.toFixed(0).padStart(8),
          String(r.conflictRetries).padStart(16),
          String(r.gaveUp).padStart(7),
        ].join('  '),
      );
    }
    console.log('(one mailbox at Exchange’s 30 messages per minute needs 0.5 grants/s)');
    const fidelity = await rateFidelity(azurite.connectionString);
    console.log(
      `Pacer benchmark (b): 4 pacers × 4 callers at 30 messages/min for 3 simulated minutes: ${fidelity.grants} grants, ` +
        `busiest 60 s window ${fidelity.busiestMinute} (goal ≤ 30), rate ${fidelity.ratioOfRate.toFixed(3)} of 30/min ` +
        `(goal ≥ 0.95), ${fidelity.conflictRetries} conflict retries`,
    );
  } finally {
    await azurite.stop();
  }
}
