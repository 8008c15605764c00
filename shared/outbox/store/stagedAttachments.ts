/**
 * The large attachments of one request, decoded into their own outbox blobs while the request arrives. The JSON
 * parser hands each large `contentBase64` to a sink ({@link StagedAttachments.open}) as it reads it; the sink checks
 * and decodes the base64 piece by piece and keeps the decoded bytes until {@link StagedAttachments.flush}, which the
 * body reader awaits after every chunk it parsed, hands them to the blob's staged blocks. So the accept holds at most
 * one body chunk of decoded bytes and two blocks per attachment, never the attachment. Nothing exists as a blob until
 * `commit`; `discard` drops the staged blocks.
 */
import { createHash } from 'node:crypto';
import type { StringValueSink } from '../../platform/json/streamedStrings';
import { AttachmentBlob } from '../../mail/attachmentBlob';
import { Base64StreamDecoder } from '../../mail/base64Stream';
import type { StagedBlob } from './stagedBlob';

/** One attachment blob being staged. */
interface StagedAttachment {
  blobName: string;
  blob: StagedBlob;
  /** Decoded bytes not yet handed to the blob. */
  pending: Buffer[];
}

/** Opens the staged blob for the `index`-th large attachment of the request. */
export type AttachmentBlobOpener = (index: number) => { blobName: string; blob: StagedBlob };

/** Content type of an attachment blob: its bytes, whatever the attachment's own type. */
const ATTACHMENT_BLOB_CONTENT_TYPE = 'application/octet-stream';

/** The staged attachment blobs of one request. */
export class StagedAttachments {
  readonly #open: AttachmentBlobOpener;
  readonly #attachments: StagedAttachment[] = [];

  constructor(open: AttachmentBlobOpener) {
    this.#open = open;
  }

  /** Names of the blobs staged so far. */
  get blobNames(): string[] {
    return this.#attachments.map((a) => a.blobName);
  }

  /** A sink that decodes one large `contentBase64` into a new staged blob (see the module comment). */
  open(): StringValueSink {
    const { blobName, blob } = this.#open(this.#attachments.length);
    const staged: StagedAttachment = { blobName, blob, pending: [] };
    this.#attachments.push(staged);
    const decoder = new Base64StreamDecoder();
    // The text's digest stands for the content when an Idempotency-Key compares two requests (requestHash.ts).
    const digest = createHash('sha256');
    return {
      write: (text) => {
        digest.update(text);
        const bytes = decoder.write(text);
        if (bytes.length > 0) staged.pending.push(bytes);
      },
      end: () => {
        const { valid, size } = decoder.end();
        if (!valid) staged.pending = [];
        return new AttachmentBlob(blobName, size, valid, digest.digest('hex'));
      },
    };
  }

  /** Hands the decoded bytes kept so far to their blobs; resolves once they can take more (backpressure). */
  async flush(): Promise<void> {
    for (const attachment of this.#attachments) {
      const pending = attachment.pending;
      attachment.pending = [];
      for (const bytes of pending) await attachment.blob.write(bytes);
    }
  }

  /** Stages what is left and commits every blob; throws a storage failure (`discard` then removes what exists). */
  async commit(): Promise<void> {
    await this.flush();
    for (const attachment of this.#attachments) await attachment.blob.commit(ATTACHMENT_BLOB_CONTENT_TYPE);
  }

  /** Drops the staged blocks of every blob not committed (best effort; see StagedBlob.discard). */
  async discard(): Promise<void> {
    for (const attachment of this.#attachments) {
      attachment.pending = [];
      await attachment.blob.discard();
    }
  }
}
