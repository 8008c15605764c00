/**
 * Paces every mailbox across all instances of the app: one Table storage row per mailbox holds its message-rate
 * state (GCRA), its recipients over the last 24 h and its concurrency leases. Each call reads the row, decides
 * (pacingRules.ts) and, when the decision changes the row, writes it back with `If-Match` on the ETag it read, so
 * two instances deciding at once cannot both take the same slot: the loser gets 412, re-reads and decides again.
 *
 * `scheduled`, `wait` and `deferred` tell the outbox how long to hide the queue message; the one short wait in the
 * process is for a concurrency lease (`leaseFreed`), which a send from the same process usually gives back within a
 * second, far sooner than a re-queued message would be seen again.
 * A write the SDK retried after the service had applied it only ever over-counts (an extra grant recorded, a lease
 * that expires unused), never under-counts.
 *
 * The row this process last read or wrote is kept (with its ETag) per mailbox, so that a reserve and the release
 * that follows cost one write each instead of a read and a write: a decision is made on the kept row and written
 * with `If-Match` on its ETag, exactly as on a row just read, so a decision made on a row another instance has since
 * changed is never written; it gets 412, the kept row goes, and the call reads and decides again. A decision that
 * writes nothing (wait, defer) is taken from a kept row only if it is under a second old ({@link KEPT_ROW_TRUSTED_MS}),
 * else it is made again on a fresh read. Calls for one mailbox take turns within the process, so that the invocations
 * of one instance do not make each other's writes fail. A mailbox whose kept row proved stale is read first for a
 * while ({@link SHARED_MAILBOX_MS}): several instances sending from it would otherwise pay a failed write
 * before most reads.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TableClient } from '@azure/data-tables';
import { ensureTable, isStatus, tableKey } from '../platform/storage/tables';
import { fromPacerEntity, toPacerEntity, type PacerEntity } from './pacerRow';
import {
  checkedLimits,
  decideRenewal,
  decideReservation,
  EMPTY_PACING_STATE,
  pacingStatus,
  positiveInteger,
  releaseLease,
  type PacerLimits,
  type PacingState,
  type PacingStatus,
  type PacingStep,
} from './pacingRules';

/**
 * The table meant for the pacing rows. Whoever wires the pacer opens it with `createTableClient(config, …)` and adds
 * it to `storageLayout.tables` in infra/main.bicep (a test holds the two together).
 */
export const MAILBOX_PACING_TABLE = 'mailboxpacing';

/** Graph's concurrent requests per app and mailbox. */
const DEFAULT_MAX_CONCURRENT = 4;

/** Lease lifetime when none is given: long enough for a large upload, short enough to recover from a crash. */
const DEFAULT_LEASE_MS = 5 * 60_000;

/** Read-decide-write rounds per call before giving up on a row other instances keep changing. */
const DEFAULT_MAX_ATTEMPTS = 10;

/** Mailboxes whose last row this process keeps (least recently used go first); a row is a few hundred bytes. */
export const KEPT_ROWS_MAX = 4_096;

/**
 * How old a kept row may be for a decision that writes nothing (wait, defer): such a decision changes nothing in the
 * row, so deciding it on a row this old is as good as on a read that took this long; an older one is read again, so
 * that a process whose kept row missed another instance's release does not wait on it.
 */
export const KEPT_ROW_TRUSTED_MS = 1_000;

/**
 * How long a mailbox whose kept row proved stale (another instance wrote it) is read before each decision instead:
 * while instances take turns on a mailbox, a kept row would cost a failed write nearly every time.
 */
export const SHARED_MAILBOX_MS = 60_000;

/** Pacer settings; `maxConcurrent` and `leaseMs` have defaults. */
export type MailboxPacerOptions = Pick<PacerLimits, 'messagesPerMinute' | 'recipientsPerDay'> &
  Partial<Pick<PacerLimits, 'maxConcurrent' | 'leaseMs'>> & {
    /** Read-decide-write rounds per call (default 10). */
    maxAttempts?: number;
  };

/** A held concurrency slot; give it back with `release`. */
export interface PacerLease {
  mailbox: string;
  id: string;
  /** Epoch ms the grant was decided at: the time its message is counted at. */
  grantedAt: number;
  /** Epoch ms after which the slot frees itself. */
  expiresAt: number;
  /** The mail's recipients, counted with it. */
  recipients: number;
}

/** The time of a decision: a fixed epoch ms (tests), or a clock read when the row is read for each attempt. */
export type DecisionTime = number | (() => number);

/** What `reserve` answers. */
export type Reservation =
  | { kind: 'granted'; lease: PacerLease }
  /** The mail's slot is `slotAt` (epoch ms): come back then, holding it (see `reserve`). */
  | { kind: 'scheduled'; slotAt: number }
  /** Ask again in `retryAfterMs`, still holding `slotAt` if given. */
  | { kind: 'wait'; retryAfterMs: number; reason: 'rate' | 'concurrency'; slotAt?: number }
  | { kind: 'deferred'; notBefore: number; reason: 'dailyRecipients' }
  | { kind: 'tooManyRecipients'; recipientsPerDay: number };

/** `peek`'s answer: the mailbox and its pacing now. */
export type MailboxPacingStatus = PacingStatus & { mailbox: string };

/** Other instances changed the row on every attempt; the caller should retry the message later. */
export class PacerContentionError extends Error {
  constructor(
    readonly mailbox: string,
    readonly attempts: number,
  ) {
    super(`mailbox pacing row for ${mailbox} changed under each of ${attempts} attempts; try again later`);
    this.name = 'PacerContentionError';
  }
}

/** The pacer shared by all instances, over one table. */
export class MailboxPacer {
  /** The limits applied to every mailbox. */
  readonly limits: PacerLimits;
  private readonly maxAttempts: number;
  private conflicts = 0;
  /** Callers of `leaseFreed` per mailbox key, woken by a release in this process. */
  private readonly leaseWaiters = new Map<string, Set<() => void>>();
  /** The row of each mailbox as this process last read or wrote it; least recently used first. */
  private readonly kept = new Map<string, KeptRow>();
  /** The last call for each mailbox that is under way in this process, which the next one waits for. */
  private readonly turns = new Map<string, Promise<void>>();
  /** Mailboxes whose kept row proved stale, until when they are read first (epoch ms). */
  private readonly sharedUntil = new Map<string, number>();

  constructor(
    private readonly table: TableClient,
    options: MailboxPacerOptions,
  ) {
    this.limits = checkedLimits({
      messagesPerMinute: options.messagesPerMinute,
      recipientsPerDay: options.recipientsPerDay,
      maxConcurrent: options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT,
      leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
    });
    this.maxAttempts = positiveInteger('maxAttempts', options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
  }

  /** Writes this pacer lost to another writer (412 on update, 409 on first insert) and retried. */
  get conflictRetries(): number {
    return this.conflicts;
  }

  /**
   * Asks whether a mail from `mailbox` to `recipients` recipients (To + Cc + Bcc) may go at `now`. A grant takes a
   * concurrency lease; a grant or a schedule counts the message and its recipients. A mail that was `scheduled`
   * passes its `slotAt` back as `heldSlotAt` when it returns. With a clock for `now`, each read-decide-write round
   * decides at the clock's time, so a grant counts the moment it was really decided, however long losing rounds took.
   */
  async reserve(
    mailbox: string,
    recipients: number,
    now: DecisionTime = Date.now,
    heldSlotAt?: number,
  ): Promise<Reservation> {
    const leaseId = randomUUID();
    const decision = await this.update(mailbox, (state) =>
      decideReservation(state, this.limits, recipients, timeOf(now), leaseId, heldSlotAt),
    );
    if (decision.kind !== 'granted') return decision;
    const { grantedAt, expiresAt } = decision;
    return { kind: 'granted', lease: { mailbox, id: leaseId, grantedAt, expiresAt, recipients } };
  }

  /**
   * Renews `lease`, whose mail has not been submitted and whose decision is older than `DECISION_VALID_MS`
   * (messageWindow.ts): its message is counted again at `now` if the sliding minute has room (a `granted` answer
   * with the renewed lease), or the grant is given back whole and the mail must wait (`wait`).
   */
  async renew(
    lease: PacerLease,
    now: DecisionTime = Date.now,
  ): Promise<{ kind: 'granted'; lease: PacerLease } | { kind: 'wait'; retryAfterMs: number; reason: 'rate' }> {
    const grant = { leaseId: lease.id, grantedAt: lease.grantedAt, recipients: lease.recipients };
    const decision = await this.update(lease.mailbox, (state) => decideRenewal(state, this.limits, grant, timeOf(now)));
    if (decision.kind !== 'granted') return decision;
    return { kind: 'granted', lease: { ...lease, grantedAt: decision.grantedAt, expiresAt: decision.expiresAt } };
  }

  /**
   * Gives a lease's concurrency slot back once its mail is done with Graph, and counts the mail at the release
   * (pacingRules.ts, `releaseLease`); releasing twice, or after expiry, is harmless.
   */
  async release(lease: PacerLease, now: DecisionTime = Date.now): Promise<void> {
    const grant = { leaseId: lease.id, grantedAt: lease.grantedAt, recipients: lease.recipients };
    try {
      await this.update(lease.mailbox, (state) => releaseLease(state, grant, timeOf(now)));
    } finally {
      const waiters = this.leaseWaiters.get(partitionKeyOf(lease.mailbox));
      for (const wake of waiters ?? []) wake();
    }
  }

  /**
   * Resolves when this process releases a lease of `mailbox`, or after `maxMs` (a lease held by another instance
   * frees without telling this one): what a mail that found every lease held waits for before asking again.
   */
  leaseFreed(mailbox: string, maxMs: number): Promise<void> {
    const key = partitionKeyOf(mailbox);
    return new Promise((resolve) => {
      const waiters = this.leaseWaiters.get(key) ?? new Set<() => void>();
      this.leaseWaiters.set(key, waiters);
      const wake = (): void => {
        clearTimeout(timer);
        waiters.delete(wake);
        if (waiters.size === 0 && this.leaseWaiters.get(key) === waiters) this.leaseWaiters.delete(key);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, maxMs));
      waiters.add(wake);
    });
  }

  /** The mailbox's pacing at `now` (next slot, recipients in the window, leases held), without changing it. */
  async peek(mailbox: string, now: number = Date.now()): Promise<MailboxPacingStatus> {
    await ensureTable(this.table);
    const row = await this.read(partitionKeyOf(mailbox));
    return { mailbox, ...pacingStatus(row?.state ?? EMPTY_PACING_STATE, this.limits, now) };
  }

  /**
   * Decide on the row (the kept one when there is one and the mailbox is not shared, else one read now) and write
   * the decision's new state guarded by that row's ETag (insert if there was no row). A 412 or 409 means another
   * instance wrote first: read again and decide again. Calls for one mailbox take turns in the process, so that they
   * decide on each other's writes instead of failing on them.
   */
  private async update<T>(mailbox: string, decide: (state: PacingState) => PacingStep<T>): Promise<T> {
    await ensureTable(this.table);
    const partitionKey = partitionKeyOf(mailbox);
    const previous = this.turns.get(partitionKey);
    let finished!: () => void;
    const turn = new Promise<void>((resolve) => (finished = resolve));
    this.turns.set(partitionKey, turn);
    try {
      await previous;
      return await this.decideAndWrite(mailbox, partitionKey, decide);
    } finally {
      finished();
      if (this.turns.get(partitionKey) === turn) this.turns.delete(partitionKey);
    }
  }

  private async decideAndWrite<T>(
    mailbox: string,
    partitionKey: string,
    decide: (state: PacingState) => PacingStep<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const kept = this.keptRow(partitionKey);
      let row = kept ? kept.row : await this.read(partitionKey);
      let { result, next } = decide(row?.state ?? EMPTY_PACING_STATE);
      if (!next && kept && Date.now() - kept.at > KEPT_ROW_TRUSTED_MS) {
        // Nothing to write would prove an older kept row current: decide again on the row as it is now.
        row = await this.read(partitionKey);
        ({ result, next } = decide(row?.state ?? EMPTY_PACING_STATE));
      }
      if (!next) return result;
      try {
        const entity = toPacerEntity(partitionKey, next);
        const written = row
          ? await this.table.updateEntity(entity, 'Replace', { etag: row.etag })
          : await this.table.createEntity(entity);
        if (written.etag) this.keep(partitionKey, { state: next, etag: written.etag });
        else this.kept.delete(partitionKey);
        return result;
      } catch (err) {
        // Whether a failed write was applied is unknown: the next call reads.
        this.kept.delete(partitionKey);
        if (!isStatus(err, row ? 412 : 409)) throw err;
        if (kept) this.sharedUntil.set(partitionKey, Date.now() + SHARED_MAILBOX_MS);
      }
      this.conflicts++;
      if (attempt >= this.maxAttempts) throw new PacerContentionError(mailbox, attempt);
      // A kept row that proved stale is simply read again; writers that lost to each other on fresh rows would
      // collide again, so a random, growing pause spreads them out.
      if (!kept) await sleep(Math.random() * Math.min(200, 5 * 2 ** attempt));
    }
  }

  /** The kept row of `partitionKey` (its `row` undefined: none exists), or `undefined` when it must be read. */
  private keptRow(partitionKey: string): KeptRow | undefined {
    const shared = this.sharedUntil.get(partitionKey);
    if (shared !== undefined) {
      if (Date.now() < shared) return undefined;
      this.sharedUntil.delete(partitionKey);
    }
    const kept = this.kept.get(partitionKey);
    if (kept === undefined) return undefined;
    // Most recently used last: the first key is the one to drop when the map is full.
    this.kept.delete(partitionKey);
    this.kept.set(partitionKey, kept);
    return kept;
  }

  /** Keeps `row` (`undefined`: there is none) as the mailbox's row as of now. */
  private keep(partitionKey: string, row: StoredRow | undefined): void {
    this.kept.delete(partitionKey);
    this.kept.set(partitionKey, { row, at: Date.now() });
    if (this.kept.size > KEPT_ROWS_MAX) this.kept.delete(this.kept.keys().next().value as string);
    if (this.sharedUntil.size > KEPT_ROWS_MAX) this.sharedUntil.delete(this.sharedUntil.keys().next().value as string);
  }

  /** Reads the row now, and keeps what it read. */
  private async read(partitionKey: string): Promise<StoredRow | undefined> {
    let row: StoredRow | undefined;
    try {
      const entity = await this.table.getEntity<PacerEntity>(partitionKey, '');
      row = { state: fromPacerEntity(entity), etag: entity.etag };
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
    this.keep(partitionKey, row);
    return row;
  }
}

/** A mailbox's row as this process last read or wrote it, and when (epoch ms). */
interface KeptRow {
  row: StoredRow | undefined;
  at: number;
}

/** A pacing row as stored: its state and the ETag it was read or written with. */
interface StoredRow {
  state: PacingState;
  etag: string;
}

function timeOf(now: DecisionTime): number {
  return typeof now === 'function' ? now() : now;
}

/** Addresses are case-insensitive: one row per mailbox whatever the caller's casing. */
function partitionKeyOf(mailbox: string): string {
  return tableKey(mailbox.trim().toLowerCase());
}
