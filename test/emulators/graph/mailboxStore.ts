/**
 * One user's emulated Exchange mailbox: the well-known folders and the messages in them, kept as Graph message
 * resources. Routes read and change it; later features deliver mail into Inbox through {@link MailboxStore.addMessage}
 * and watch it (change notifications, delta) through {@link MailboxStore.onChange}.
 *
 * Exchange behaviours products trip over are kept: ids are opaque base64 strings ending in `=`, every change gets a
 * new `changeKey`, and moving a message gives it a new id.
 */
import { randomBytes } from 'node:crypto';
import type { FileAttachment, InternetMessageHeader, MailFolder, Message } from '@microsoft/microsoft-graph-types';
import type { TenantUser } from '../tenant';
import { bodyPreview } from './mailBody';
import { messageMime } from './mime';

/**
 * Well-known folder names Graph accepts in place of a folder id (case-insensitive; the mailFolder resource lists them).
 * `outbox` holds what Exchange accepted for sending and has not let leave yet (see submissionQueue.ts).
 */
export const WELL_KNOWN_FOLDERS = [
  'inbox',
  'drafts',
  'sentitems',
  'deleteditems',
  'outbox',
  'archive',
  'junkemail',
] as const;

/** A well-known folder name. */
export type WellKnownFolderName = (typeof WELL_KNOWN_FOLDERS)[number];

const DISPLAY_NAMES: Record<WellKnownFolderName, string> = {
  inbox: 'Inbox',
  drafts: 'Drafts',
  sentitems: 'Sent Items',
  deleteditems: 'Deleted Items',
  outbox: 'Outbox',
  archive: 'Archive',
  junkemail: 'Junk Email',
};

/** A mail folder. */
export interface StoredFolder {
  readonly id: string;
  readonly wellKnownName: WellKnownFolderName;
  readonly displayName: string;
  /** The (hidden) message folder root. */
  readonly parentFolderId: string;
}

/**
 * An attachment as it may be given to the store: a file (`contentBytes`), an attached message
 * (`#microsoft.graph.itemAttachment` with `item`) or a link to a cloud file (`#microsoft.graph.referenceAttachment`
 * with `sourceUrl`, which v1.0 does not return).
 */
export type AttachmentInput = FileAttachment & {
  '@odata.type'?: string;
  /** The attached message of an item attachment. */
  item?: NewMessage;
  /** The link of a reference attachment. */
  sourceUrl?: string;
};

/** An attachment as stored: Graph's resource with its type tag and id. */
export type StoredAttachment = AttachmentInput & { '@odata.type': string; id: string };

/** A message as stored: Graph's resource with the server-assigned properties always present. */
export interface StoredMessage extends Message {
  id: string;
  parentFolderId: string;
  createdDateTime: string;
  lastModifiedDateTime: string;
  receivedDateTime: string;
  changeKey: string;
  /** Not part of the default JSON (Graph returns attachments only when expanded or listed). */
  attachments: StoredAttachment[];
  /** Not part of the default JSON (Graph returns them only when `$select`ed). */
  internetMessageHeaders: InternetMessageHeader[];
}

/** A message to store; the store assigns id, dates, changeKey and the folder. */
export interface NewMessage extends Omit<Message, 'attachments' | 'internetMessageHeaders'> {
  attachments?: AttachmentInput[];
  internetMessageHeaders?: InternetMessageHeader[];
}

/** A change to the mailbox, for change notifications and delta. `message` is a copy. */
export interface MailboxChange {
  type: 'created' | 'updated' | 'deleted';
  folderId: string;
  message: StoredMessage;
}

/** Properties the server owns; updates must not overwrite them. */
const SERVER_OWNED = new Set([
  'id',
  'parentFolderId',
  'createdDateTime',
  'lastModifiedDateTime',
  'changeKey',
  'attachments',
  'hasAttachments',
  'internetMessageHeaders',
]);

const FILE_ATTACHMENT_TYPE = '#microsoft.graph.fileAttachment';
const ITEM_ATTACHMENT_TYPE = '#microsoft.graph.itemAttachment';

/** A new opaque Exchange-style item id (URL-safe base64 with trailing padding, as real ids have). */
export function newItemId(): string {
  return `AAMkAG${randomBytes(60).toString('base64url')}AAA=`;
}

/** True when `id` has the shape of an Exchange item id; anything else Graph rejects as malformed. */
export function isWellFormedItemId(id: string): boolean {
  return /^AAMk[A-Za-z0-9_-]{20,}={0,2}$/.test(id);
}

/** A new change key (standard base64, as Exchange's are). */
export function newChangeKey(): string {
  return `CQAAABYAAA${randomBytes(21).toString('base64')}`;
}

/** Graph's date-time format: UTC, seconds precision. */
export function graphDateTime(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

interface Entry {
  message: StoredMessage;
  /** Insertion order, to order messages received in the same second. */
  seq: number;
}

/** The emulated contents of one mailbox. */
export class MailboxStore {
  /** The hidden root the well-known folders hang off (folders' `parentFolderId`). */
  readonly rootFolderId = newItemId();
  private readonly folderList: StoredFolder[];
  private readonly messages = new Map<string, Entry>();
  private readonly listeners = new Set<(change: MailboxChange) => void>();
  private seq = 0;

  constructor(readonly user: TenantUser) {
    this.folderList = WELL_KNOWN_FOLDERS.map((name) => ({
      id: newItemId(),
      wellKnownName: name,
      displayName: DISPLAY_NAMES[name],
      parentFolderId: this.rootFolderId,
    }));
  }

  /** The folders, in well-known order. */
  folders(): StoredFolder[] {
    return [...this.folderList];
  }

  /** A folder by well-known name (any case) or id, or undefined. */
  findFolder(nameOrId: string): StoredFolder | undefined {
    const name = nameOrId.toLowerCase();
    return this.folderList.find((f) => f.wellKnownName === name || f.id === nameOrId);
  }

  /** The folder as Graph's mailFolder resource, with live counts. */
  folderResource(folder: StoredFolder): MailFolder & { id: string } {
    const inFolder = [...this.messages.values()].filter((e) => e.message.parentFolderId === folder.id);
    return {
      id: folder.id,
      displayName: folder.displayName,
      parentFolderId: folder.parentFolderId,
      childFolderCount: 0,
      unreadItemCount: inFolder.filter((e) => !e.message.isRead).length,
      totalItemCount: inFolder.length,
      isHidden: false,
    };
  }

  /** Stores `message` in `folder` (well-known name or id) and returns the stored copy. */
  addMessage(folder: string, message: NewMessage): StoredMessage {
    const target = this.requireFolder(folder);
    const now = graphDateTime();
    const input = deepCopy(message);
    const id = newItemId();
    const attachments = (input.attachments ?? []).map((a) => this.storedAttachment(a, now));
    const stored: StoredMessage = {
      importance: 'normal',
      categories: [],
      toRecipients: [],
      ccRecipients: [],
      bccRecipients: [],
      replyTo: [],
      isRead: false,
      isDraft: target.wellKnownName === 'drafts',
      isDeliveryReceiptRequested: false,
      isReadReceiptRequested: false,
      inferenceClassification: 'focused',
      flag: { flagStatus: 'notFlagged' },
      conversationId: `AAQkAG${randomBytes(30).toString('base64url')}=`,
      internetMessageId: `<${randomBytes(12).toString('hex')}@${this.user.mail.split('@')[1] ?? 'localhost'}>`,
      ...input,
      subject: input.subject ?? '',
      body: input.body ?? { contentType: 'text', content: '' },
      bodyPreview: input.bodyPreview ?? bodyPreview(input.body),
      sentDateTime: input.sentDateTime ?? (target.wellKnownName === 'drafts' ? null : now),
      id,
      parentFolderId: target.id,
      createdDateTime: now,
      lastModifiedDateTime: now,
      receivedDateTime: input.receivedDateTime ?? now,
      changeKey: newChangeKey(),
      attachments,
      internetMessageHeaders: input.internetMessageHeaders ?? [],
      hasAttachments: attachments.some((a) => !a.isInline),
      webLink: webLink(id),
    };
    this.messages.set(id, { message: stored, seq: this.seq++ });
    this.emit('created', stored);
    return deepCopy(stored);
  }

  /** A copy of the message with `id`, or undefined. */
  getMessage(id: string): StoredMessage | undefined {
    const entry = this.messages.get(id);
    return entry && deepCopy(entry.message);
  }

  /** Copies of the messages in `folder` (or the whole mailbox), newest received first, as Graph lists them. */
  listMessages(folder?: string): StoredMessage[] {
    const folderId = folder === undefined ? undefined : this.requireFolder(folder).id;
    return [...this.messages.values()]
      .filter((e) => folderId === undefined || e.message.parentFolderId === folderId)
      .sort((a, b) => b.message.receivedDateTime.localeCompare(a.message.receivedDateTime) || b.seq - a.seq)
      .map((e) => deepCopy(e.message));
  }

  /** Applies client-settable properties of `patch`; returns the updated copy or undefined when absent. */
  updateMessage(id: string, patch: Partial<Message>): StoredMessage | undefined {
    const entry = this.messages.get(id);
    if (!entry) return undefined;
    const target = entry.message as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(deepCopy(patch))) {
      if (!SERVER_OWNED.has(key)) target[key] = value;
    }
    if (patch.body && patch.bodyPreview === undefined) entry.message.bodyPreview = bodyPreview(patch.body);
    this.touch(entry.message);
    this.emit('updated', entry.message);
    return deepCopy(entry.message);
  }

  /** Adds a file attachment to a message; returns the stored attachment or undefined when the message is absent. */
  addAttachment(messageId: string, attachment: AttachmentInput): StoredAttachment | undefined {
    const entry = this.messages.get(messageId);
    if (!entry) return undefined;
    const stored = this.storedAttachment(deepCopy(attachment), graphDateTime());
    entry.message.attachments.push(stored);
    entry.message.hasAttachments = entry.message.attachments.some((a) => !a.isInline);
    this.touch(entry.message);
    this.emit('updated', entry.message);
    return deepCopy(stored);
  }

  /**
   * Moves a message to `folder`. Exchange gives a moved item a new id, so the old id stops working; returns the moved
   * copy (with its new id) or undefined when the message is absent.
   */
  moveMessage(id: string, folder: string): StoredMessage | undefined {
    const target = this.requireFolder(folder);
    const entry = this.messages.get(id);
    if (!entry) return undefined;
    this.messages.delete(id);
    this.emit('deleted', entry.message);
    const moved: StoredMessage = { ...entry.message, id: newItemId(), parentFolderId: target.id };
    moved.webLink = webLink(moved.id);
    this.touch(moved);
    this.messages.set(moved.id, { message: moved, seq: entry.seq });
    this.emit('created', moved);
    return deepCopy(moved);
  }

  /** Removes a message for good; false when it was not there. */
  deleteMessage(id: string): boolean {
    const entry = this.messages.get(id);
    if (!entry) return false;
    this.messages.delete(id);
    this.emit('deleted', entry.message);
    return true;
  }

  /** Removes every message (folders stay, with their ids). */
  clear(): void {
    for (const entry of [...this.messages.values()]) {
      this.messages.delete(entry.message.id);
      this.emit('deleted', entry.message);
    }
  }

  /** Calls `listener` after every change; returns a function that unsubscribes. */
  onChange(listener: (change: MailboxChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private requireFolder(nameOrId: string): StoredFolder {
    const folder = this.findFolder(nameOrId);
    if (!folder) throw new Error(`mailbox ${this.user.mail} has no folder '${nameOrId}'`);
    return folder;
  }

  private storedAttachment(attachment: AttachmentInput, now: string): StoredAttachment {
    const type = attachment['@odata.type'] ?? FILE_ATTACHMENT_TYPE;
    let size = attachment.contentBytes ? Buffer.from(attachment.contentBytes, 'base64').length : 0;
    // An item attachment's size is its message's: the emulator counts the MIME it serves as the attachment's $value.
    if (type === ITEM_ATTACHMENT_TYPE && attachment.item) {
      size = messageMime(attachment.item).reduce((n, part) => n + part.length, 0);
    }
    return {
      isInline: false,
      // An item attachment has no content type of its own (attachment-get.md, example 2: "contentType": null).
      contentType: type === FILE_ATTACHMENT_TYPE ? 'application/octet-stream' : null,
      size,
      ...attachment,
      '@odata.type': type,
      id: newItemId(),
      lastModifiedDateTime: now,
    };
  }

  private touch(message: StoredMessage): void {
    message.changeKey = newChangeKey();
    message.lastModifiedDateTime = graphDateTime();
  }

  private emit(type: MailboxChange['type'], message: StoredMessage): void {
    for (const listener of this.listeners) {
      listener({ type, folderId: message.parentFolderId, message: deepCopy(message) });
    }
  }
}

function webLink(id: string): string {
  return `https://outlook.office365.com/owa/?ItemID=${encodeURIComponent(id)}&exvsurl=1&viewmodel=ReadMessageItem`;
}

/**
 * Copies objects and arrays so callers cannot change stored state by accident; strings are immutable, so large
 * attachment contents are shared instead of duplicated.
 */
function deepCopy<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => deepCopy(v)) as T;
  if (value && typeof value === 'object') {
    const copy: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) copy[k] = deepCopy(v);
    return copy as T;
  }
  return value;
}
