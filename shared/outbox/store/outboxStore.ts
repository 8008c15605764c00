/**
 * The durable outbox: each accepted mail is three things in the gateway's storage account, written in this order:
 * the request as blobs (`outbox` container: each large attachment's decoded bytes as a blob of its own, then the
 * request's JSON holding references to them, see attachmentBlob.ts), its record in the `outbox` table, and a small
 * message naming it on the `mail-outbox` queue (`mail-outbox-paced` once it holds a pacer slot). A mail's blobs share the name prefix `{id}.`. The queue message is the commit point: until it exists nothing will ever send the
 * mail, and when any of the three writes fails `accept` removes what it had written and throws, so a caller told
 * "try again" (503) leaves nothing behind that could send later.
 *
 * The record is the mail's status document and changes only with `If-Match` on the ETag read, so two processors
 * holding the same message (a queue redelivery) cannot both move it. A finished record (sent or failed) carries an
 * `expiresAt` {@link OUTBOX_RECORD_RETENTION_MS} after it finished, and the renewal timer purges it after that, with
 * any blob of the mail still left; a mail still on its way has none and is never purged.
 */
import { odata, type TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import type { QueueClient } from '@azure/storage-queue';
import type { GatewayConfig } from '../../platform/config';
import type { ProblemDocument } from '../../platform/problems/problem';
import { createBlobContainerClient, createQueueClient, createTableClient } from '../../platform/storage/storage';
import { parseJsonStream } from '../../platform/json/jsonStream';
import { ensureQueue, ensureTable, isStatus, purgeExpired, tableKey } from '../../platform/storage/tables';
import type { AttachmentBlobReader } from '../../mail/attachmentBlob';
import type { ThreadRef } from '../../mail/sendRequest';
import { outboxMessage } from './outboxMessages';
import { StagedAttachments } from './stagedAttachments';
import { StagedBlob } from './stagedBlob';

/** Table of the outbox records. */
export const OUTBOX_TABLE = 'outbox';
/** Queue the outbox processor is triggered by: accepted mail, and mail waiting for anything but its pacer slot. */
export const OUTBOX_QUEUE = 'mail-outbox';
/**
 * Queue of mails holding a pacer slot, each message hidden until its slot. A queue of its own, with its own trigger,
 * so that a mail whose slot has come is never behind a burst of newly accepted mail waiting to be scheduled.
 */
export const OUTBOX_PACED_QUEUE = 'mail-outbox-paced';
/** Blob container of the stored requests. */
export const OUTBOX_CONTAINER = 'outbox';

/**
 * How long a sent or failed mail's record (its status document) is kept after it finished: a week, long enough for a
 * caller to read the outcome after a weekend, and as long as the event ledger remembers the outcome's event.
 */
export const OUTBOX_RECORD_RETENTION_MS = 7 * 86_400_000;

/**
 * Largest request JSON (UTF-8 bytes) the record holds itself instead of a blob. A Table string property holds up to
 * 32 Ki UTF-16 code units, and a request this size in UTF-8 never has more. Most mail is this small, and the processor
 * reads the record anyway: such a mail costs no blob upload, download, listing or delete.
 */
export const INLINE_REQUEST_MAX_BYTES = 30_000;

/** Longest visibility delay Azure Queue storage accepts (7 days). */
const MAX_QUEUE_DELAY_MS = 7 * 86_400_000;

/** Where a mail is in its life. */
export type OutboxStatus = 'queued' | 'scheduled' | 'deferred' | 'sending' | 'sent' | 'failed';

/** A mail's record: what `GET /api/mail/{id}` shows, and what the processor decides from. */
export interface OutboxRecord {
  id: string;
  /** The sending mailbox (lower case). */
  mailbox: string;
  /** To + Cc + Bcc, counted against the mailbox's daily recipient budget. */
  recipients: number;
  /**
   * Those outside TENANT_DOMAINS, counted against the tenant's external recipient budget; absent when the budget was
   * off at accept (the mail is then not counted).
   */
  externalRecipients?: number;
  status: OutboxStatus;
  /** Epoch ms the mail was accepted. */
  createdAt: number;
  /** Epoch ms of the last change. */
  updatedAt: number;
  /** Epoch ms before which the mail is not sent (`sendAt`, a deferral, a Retry-After). */
  notBefore?: number;
  /**
   * The caller's `sendAt` (epoch ms), when it was later than the accept: the mail is due from then, so its
   * `OUTBOX_MAX_AGE_HOURS` count from then. Kept apart from `notBefore`, which pacing and retries move.
   */
  sendAt?: number;
  /** Why the mail waits, for `scheduled` and `deferred`. */
  reason?: string;
  /** Submissions to Graph started (at most one reaches Graph; see the processor). */
  attempts: number;
  /** Graph `request-id`s of the calls made for this mail, oldest first. */
  requestIds: string[];
  /** The failure, for `failed`. */
  problem?: ProblemDocument;
  /** The `internetMessageId` the gateway gave the message, so that Sent Items can tell whether it went. */
  internetMessageId: string;
  /** Whether Graph keeps a copy in Sent Items (without one, an interrupted attempt cannot be checked). */
  saveToSentItems: boolean;
  /** Epoch ms an attempt started and has not been recorded as finished: the attempt may have reached Graph. */
  attemptStartedAt?: number;
  /** Epoch ms the mail was sent. */
  sentAt?: number;
  /**
   * The request's JSON when small enough to keep here ({@link INLINE_REQUEST_MAX_BYTES}) rather than as a blob; mail
   * content, so never logged nor shown, and dropped once the mail is sent or failed.
   */
  inlineRequest?: string;
  /** What the mail answers (a reply or forward of a message in `mailbox`); absent for a new mail. */
  thread?: ThreadRef;
  /** The conversation of the sent message, when Graph said (a reply or forward's draft answers it). */
  conversationId?: string;
  /**
   * The `Idempotency-Key` this record claims (its id derives from the key, see `mailIdForKey`): the canonical hash of
   * the request that stored it, and until when the key answers repeats with this mail.
   */
  idempotency?: { requestHash: string; expiresAt: number };
  /** Non-delivery reports that came back for the mail, oldest first (see bounces.ts). */
  bounces?: MailBounce[];
}

/** One non-delivery report that came back for a sent mail. */
export interface MailBounce {
  /** The Graph id of the report in the sending mailbox. */
  ndrMessageId: string;
  /** When the report arrived. */
  receivedDateTime: string | null;
  /** The recipients it says failed, with their enhanced status codes. */
  recipients: Array<{ address: string; status: string; diagnostic?: string }>;
}

/**
 * What a reply or forward answered (`inReplyTo`: the mailbox, the original's id and how it was answered) and the
 * sent message's `conversationId` when known: what its status document and its events say.
 */
export function threadFacts(record: OutboxRecord): Record<string, unknown> {
  return {
    ...(record.thread
      ? { inReplyTo: { mailbox: record.mailbox, messageId: record.thread.messageId, kind: record.thread.kind } }
      : {}),
    ...(record.conversationId ? { conversationId: record.conversationId } : {}),
  };
}

/** A record and the ETag it was read with. */
export interface StoredRecord {
  record: OutboxRecord;
  etag: string;
}

/** What `accept` needs besides the payload. */
export type NewOutboxMail = Pick<
  OutboxRecord,
  | 'id'
  | 'mailbox'
  | 'recipients'
  | 'externalRecipients'
  | 'internetMessageId'
  | 'saveToSentItems'
  | 'notBefore'
  | 'thread'
>;

/** A request to store: its JSON (large attachments as references) and those attachments, staged as it arrived. */
export interface RequestToStore {
  json: Buffer;
  attachments: StagedAttachments;
}

/** The record changed since it was read (another invocation moved it). */
export class OutboxRecordChangedError extends Error {
  constructor(id: string) {
    super(`outbox record ${id} changed since it was read`);
    this.name = 'OutboxRecordChangedError';
  }
}

interface OutboxEntity {
  partitionKey: string;
  rowKey: string;
  mailbox: string;
  recipients: number;
  externalRecipients?: number;
  status: OutboxStatus;
  createdAt: number;
  updatedAt: number;
  notBefore?: number;
  sendAt?: number;
  reason?: string;
  attempts: number;
  requestIds: string;
  problem?: string;
  internetMessageId: string;
  saveToSentItems: boolean;
  attemptStartedAt?: number;
  sentAt?: number;
  inlineRequest?: string;
  /** The record's `thread` as JSON. */
  thread?: string;
  conversationId?: string;
  idempotencyHash?: string;
  idempotencyExpiresAt?: number;
  /** The record's `bounces` as JSON. */
  bounces?: string;
  /** Set once the mail is sent or failed: when the renewal timer may purge the record (a Date, for the OData filter). */
  expiresAt?: Date;
}

/** Rounds of insert, read and replace before a key's claim gives up (only an expired key's takeover can loop). */
const MAX_CLAIM_ATTEMPTS = 5;

/** The outbox over one storage account. */
export class OutboxStore implements AttachmentBlobReader {
  private containerReady?: Promise<void>;

  /** `pacedQueue` takes the messages that hold a pacer slot (the main queue when not given). */
  constructor(
    private readonly table: TableClient,
    private readonly queue: QueueClient,
    private readonly container: ContainerClient,
    private readonly pacedQueue: QueueClient = queue,
  ) {}

  /** The store for `config`'s storage account. */
  static fromConfig(config: GatewayConfig): OutboxStore {
    return new OutboxStore(
      createTableClient(config, OUTBOX_TABLE),
      createQueueClient(config, OUTBOX_QUEUE),
      createBlobContainerClient(config, OUTBOX_CONTAINER),
      createQueueClient(config, OUTBOX_PACED_QUEUE),
    );
  }

  /**
   * The large attachments of mail `id`, to stage while its request arrives; `accept` commits them. No blob exists
   * until then. `token` makes the names this request's own (a keyed request's id is shared by its duplicates).
   */
  stageAttachments(id: string, token?: string): StagedAttachments {
    return new StagedAttachments((index) => {
      const blobName = `${blobPrefix(id)}${token === undefined ? '' : `${token}.`}attachment-${index}`;
      return {
        blobName,
        blob: new StagedBlob(this.container.getBlockBlobClient(blobName), () => this.ensureContainer()),
      };
    });
  }

  /**
   * Stores the mail: commits its staged large attachments, stores its request (the JSON, referencing them; in the
   * record itself when it has no attachment blobs and is small), writes the record, then enqueues the mail (hidden
   * until `notBefore`, when given). `payload` is the JSON alone, or the JSON and the attachments staged while it
   * arrived. All or nothing: on failure whatever was written is removed (best effort) and the error is thrown.
   *
   * With a claim (`acceptClaiming`: an `Idempotency-Key`; the mail's id derives from it) the record's insert is the key's claim,
   * and comes first: the answer is `taken` with the record found when another request holds the key (nothing of this
   * one is written), or when that record's key expired and the mail is finished, this record replaces it (ETag).
   */
  async accept(mail: NewOutboxMail, payload: Buffer | RequestToStore, now: number = Date.now()): Promise<OutboxRecord> {
    const result = await this.acceptClaiming(mail, payload, now, undefined);
    if (result.kind === 'taken') throw new Error('unreachable: only a claim finds its key taken');
    return result.record;
  }

  /** {@link accept} with an `Idempotency-Key`'s `claim`: `taken`, with the record found, when another request holds it. */
  async acceptClaiming(
    mail: NewOutboxMail,
    payload: Buffer | RequestToStore,
    now: number,
    claim: { requestHash: string; ttlMs: number } | undefined,
  ): Promise<{ kind: 'stored'; record: OutboxRecord } | { kind: 'taken'; existing: OutboxRecord }> {
    const { json, attachments } = Buffer.isBuffer(payload) ? { json: payload, attachments: undefined } : payload;
    const inline = (attachments?.blobNames.length ?? 0) === 0 && json.length <= INLINE_REQUEST_MAX_BYTES;
    // The table first: it is where a key is claimed, and what an unreachable account is reported by.
    await ensureTable(this.table);
    await Promise.all([ensureQueue(this.queue), inline || this.ensureContainer()]);
    const record: OutboxRecord = {
      ...mail,
      status: mail.notBefore !== undefined && mail.notBefore > now ? 'scheduled' : 'queued',
      ...(mail.notBefore !== undefined && mail.notBefore > now ? { reason: 'sendAt', sendAt: mail.notBefore } : {}),
      createdAt: now,
      updatedAt: now,
      attempts: 0,
      requestIds: [],
      ...(inline ? { inlineRequest: json.toString('utf8') } : {}),
      ...(claim ? { idempotency: { requestHash: claim.requestHash, expiresAt: now + claim.ttlMs } } : {}),
    };
    let wroteRecord = false;
    try {
      if (claim) {
        // The claim first: only the request holding the key writes the mail's blobs (their names derive from the id).
        const taken = await this.insertClaiming(record, now);
        if (taken) return { kind: 'taken', existing: taken };
        wroteRecord = true;
      }
      await attachments?.commit();
      // The blob's client only when there is a blob to write: building one is 1.7 % of an accept's CPU in the host.
      if (!inline) {
        const blob = this.container.getBlockBlobClient(blobName(mail.id));
        await blob.upload(json, json.length, { blobHTTPHeaders: { blobContentType: 'application/json' } });
      }
      if (!claim) await this.table.createEntity(toEntity(record));
      wroteRecord = true;
      await this.enqueue(mail.id, (record.notBefore ?? now) - now);
      return { kind: 'stored', record };
    } catch (err) {
      // Remove what this call wrote so that nothing can send a mail whose caller was told to try again (and the key
      // is free again for the caller's retry).
      if (wroteRecord) await this.table.deleteEntity(tableKey(mail.id), '').catch(() => undefined);
      await attachments?.discard();
      if (!inline) await this.deletePayload(mail.id).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Inserts `record` as its key's claim: undefined when written, else the record holding the key. A finished mail
   * whose key expired gives the key up: this record replaces it, guarded by the ETag read.
   */
  private async insertClaiming(record: OutboxRecord, now: number): Promise<OutboxRecord | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.table.createEntity(toEntity(record));
        return undefined;
      } catch (err) {
        if (!isStatus(err, 409)) throw err;
      }
      const existing = await this.get(record.id);
      // Gone meanwhile (the accept holding the key failed and rolled back): claim it again.
      if (!existing) continue;
      const expiresAt = existing.record.idempotency?.expiresAt ?? 0;
      if (expiresAt > now || !isFinished(existing.record.status)) return existing.record;
      try {
        await this.table.updateEntity(toEntity(record), 'Replace', { etag: existing.etag });
        return undefined;
      } catch (err) {
        if (!isStatus(err, 412) || attempt >= MAX_CLAIM_ATTEMPTS) throw err;
      }
    }
  }

  /**
   * Puts the mail on the queue again, hidden for `delayMs` (capped at the queue's 7 days; the queue counts whole
   * seconds, so it is rounded up). `slotAt` is the pacer slot the message holds (see MailboxPacer.reserve); such a
   * message goes to the paced queue.
   */
  async enqueue(id: string, delayMs: number, slotAt?: number): Promise<void> {
    const queue = slotAt === undefined ? this.queue : this.pacedQueue;
    await ensureQueue(queue);
    const seconds = Math.ceil(Math.min(Math.max(delayMs, 0), MAX_QUEUE_DELAY_MS) / 1000);
    const message = outboxMessage.encode(slotAt === undefined ? { id } : { id, slotAt });
    await queue.sendMessage(message, seconds > 0 ? { visibilityTimeout: seconds } : {});
  }

  /** The record of mail `id`, or undefined when there is none. */
  async get(id: string): Promise<StoredRecord | undefined> {
    await ensureTable(this.table);
    try {
      const entity = await this.table.getEntity<OutboxEntity>(tableKey(id), '');
      return { record: fromEntity(id, entity), etag: entity.etag };
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  /**
   * Writes `record` over the stored one if it is still at `etag`; returns the new ETag. Throws
   * {@link OutboxRecordChangedError} when another invocation changed it first.
   */
  async update(record: OutboxRecord, etag: string): Promise<string> {
    try {
      const { etag: next } = await this.table.updateEntity(toEntity(record), 'Replace', { etag });
      if (!next) throw new Error('Table storage answered an update without an ETag');
      return next;
    } catch (err) {
      if (isStatus(err, 412)) throw new OutboxRecordChangedError(record.id);
      throw err;
    }
  }

  /**
   * The records no processor has touched (never updated, no attempt) that were due before `dueBefore`: `queued` ones
   * accepted before it, `scheduled` ones whose `notBefore` is before it. Their queue message should have been seen
   * long ago; see strandedMail.ts.
   */
  async *untouchedDueBefore(dueBefore: number): AsyncIterable<StoredRecord> {
    await ensureTable(this.table);
    const candidates = this.table.listEntities<OutboxEntity>({
      queryOptions: {
        filter: odata`attempts eq 0 and createdAt lt ${dueBefore} and (status eq 'queued' or status eq 'scheduled')`,
      },
    });
    for await (const entity of candidates) {
      const record = fromEntity(decodeURIComponent(entity.partitionKey), entity);
      if (record.updatedAt === record.createdAt && (record.notBefore ?? record.createdAt) < dueBefore) {
        yield { record, etag: entity.etag };
      }
    }
  }

  /**
   * Deletes the records of mails that finished (sent or failed) more than {@link OUTBOX_RECORD_RETENTION_MS} before
   * `now`, and any blob of theirs still left (the processor deletes them when a mail finishes; a failed delete leaves
   * them for this); returns how many records. Blobs go first, so that a failure keeps the record for the next purge.
   */
  async purgeExpired(now: Date): Promise<number> {
    await ensureTable(this.table);
    const expired = this.table.listEntities<{ partitionKey: string }>({
      queryOptions: { filter: odata`expiresAt lt ${now}`, select: ['PartitionKey'] },
    });
    for await (const entity of expired) await this.deletePayload(decodeURIComponent(entity.partitionKey));
    return purgeExpired(this.table, now);
  }

  /** The stored request of mail `id`: its JSON, large attachments as references (see attachmentBlob.ts). */
  async readPayload(id: string): Promise<Buffer> {
    const inline = (await this.get(id))?.record.inlineRequest;
    if (inline !== undefined) return Buffer.from(inline, 'utf8');
    return this.container.getBlockBlobClient(blobName(id)).downloadToBuffer();
  }

  /** The stored request of `record`'s mail, parsed: from the record itself, or from its blob as it downloads. */
  async readRequest(record: OutboxRecord): Promise<unknown> {
    // JSON.parse keeps "__proto__" an own key, as the streaming parser does.
    if (record.inlineRequest !== undefined) return JSON.parse(record.inlineRequest) as unknown;
    return this.readPayloadJson(record.id);
  }

  /**
   * The stored request of mail `id`, parsed as it downloads: the blob's bytes are never held whole, only the parsed
   * values. Throws {@link MalformedJsonError} when the stored bytes are not JSON.
   */
  async readPayloadJson(id: string): Promise<unknown> {
    const download = await this.container.getBlockBlobClient(blobName(id)).download();
    const body = download.readableStreamBody;
    if (!body) throw new Error(`outbox payload ${id} downloaded without a body`);
    return parseJsonStream(body as AsyncIterable<Uint8Array>);
  }

  /** Bytes [start, end) of an attachment blob, downloaded into `into` (at least `end - start` bytes); a view of them. */
  async readAttachmentRange(blobName: string, start: number, end: number, into: Buffer): Promise<Buffer> {
    const count = end - start;
    if (count > into.length) throw new RangeError(`a buffer of ${into.length} bytes cannot take ${count}`);
    if (count === 0) return into.subarray(0, 0);
    await this.container.getBlockBlobClient(blobName).downloadToBuffer(into, start, count);
    return into.subarray(0, count);
  }

  /** The whole of an attachment blob (a small one, that travels inside a JSON request). */
  async readAttachment(blobName: string): Promise<Buffer> {
    return this.container.getBlockBlobClient(blobName).downloadToBuffer();
  }

  /** Deletes the stored request of mail `id` and its attachment blobs (once it is sent or failed, nothing reads them). */
  async deletePayload(id: string): Promise<void> {
    await this.ensureContainer();
    for await (const blob of this.container.listBlobsFlat({ prefix: blobPrefix(id) }))
      await this.container.getBlockBlobClient(blob.name).deleteIfExists();
  }

  /** Whether the stored request of mail `id` exists (tests and diagnostics). */
  async hasPayload(id: string): Promise<boolean> {
    await this.ensureContainer();
    return this.container.getBlockBlobClient(blobName(id)).exists();
  }

  /** Names of the blobs mail `id` has in the outbox container: its request and attachments (tests and diagnostics). */
  async blobsOf(id: string): Promise<string[]> {
    await this.ensureContainer();
    const names: string[] = [];
    for await (const blob of this.container.listBlobsFlat({ prefix: blobPrefix(id) })) names.push(blob.name);
    return names;
  }

  private ensureContainer(): Promise<void> {
    this.containerReady ??= this.container.createIfNotExists().then(
      () => undefined,
      (err: unknown) => {
        this.containerReady = undefined;
        throw err;
      },
    );
    return this.containerReady;
  }
}

/** What every blob name of mail `id` starts with (ids are UUIDs: no id's prefix is another's). */
function blobPrefix(id: string): string {
  return `${encodeURIComponent(id)}.`;
}

/** The blob of mail `id`'s request. */
function blobName(id: string): string {
  return `${blobPrefix(id)}json`;
}

function toEntity(record: OutboxRecord): OutboxEntity {
  const { id, requestIds, problem, thread, idempotency, bounces, ...rest } = record;
  const entity: OutboxEntity = {
    ...rest,
    ...(bounces && bounces.length > 0 ? { bounces: JSON.stringify(bounces) } : {}),
    ...(idempotency ? { idempotencyHash: idempotency.requestHash, idempotencyExpiresAt: idempotency.expiresAt } : {}),
    ...(thread ? { thread: JSON.stringify(thread) } : {}),
    partitionKey: tableKey(id),
    rowKey: '',
    requestIds: JSON.stringify(requestIds),
    ...(problem ? { problem: JSON.stringify(problem) } : {}),
    ...(isFinished(record.status) ? { expiresAt: new Date(record.updatedAt + OUTBOX_RECORD_RETENTION_MS) } : {}),
  };
  // A Replace removes the properties it does not name, which is how a cleared field (e.g. notBefore) goes away.
  for (const key of Object.keys(entity) as (keyof OutboxEntity)[]) if (entity[key] === undefined) delete entity[key];
  return entity;
}

function isFinished(status: OutboxStatus): boolean {
  return status === 'sent' || status === 'failed';
}

function fromEntity(id: string, entity: OutboxEntity): OutboxRecord {
  const record: OutboxRecord = {
    id,
    mailbox: entity.mailbox,
    recipients: entity.recipients,
    status: entity.status,
    createdAt: entity.createdAt,
    updatedAt: entity.updatedAt,
    attempts: entity.attempts,
    requestIds: JSON.parse(entity.requestIds) as string[],
    internetMessageId: entity.internetMessageId,
    saveToSentItems: entity.saveToSentItems,
  };
  if (entity.externalRecipients !== undefined) record.externalRecipients = entity.externalRecipients;
  if (entity.notBefore !== undefined) record.notBefore = entity.notBefore;
  if (entity.sendAt !== undefined) record.sendAt = entity.sendAt;
  if (entity.reason !== undefined) record.reason = entity.reason;
  if (entity.problem !== undefined) record.problem = JSON.parse(entity.problem) as ProblemDocument;
  if (entity.attemptStartedAt !== undefined) record.attemptStartedAt = entity.attemptStartedAt;
  if (entity.sentAt !== undefined) record.sentAt = entity.sentAt;
  if (entity.inlineRequest !== undefined) record.inlineRequest = entity.inlineRequest;
  // Records stored before replies existed have neither: a new mail.
  if (entity.thread !== undefined) record.thread = JSON.parse(entity.thread) as ThreadRef;
  if (entity.conversationId !== undefined) record.conversationId = entity.conversationId;
  if (entity.bounces !== undefined) record.bounces = JSON.parse(entity.bounces) as MailBounce[];
  if (entity.idempotencyHash !== undefined && entity.idempotencyExpiresAt !== undefined) {
    record.idempotency = { requestHash: entity.idempotencyHash, expiresAt: entity.idempotencyExpiresAt };
  }
  return record;
}
