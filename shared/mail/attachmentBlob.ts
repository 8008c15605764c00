/**
 * An attachment's content held as a blob of its decoded bytes instead of a base64 string. While a send request is
 * read, a large `contentBase64` is decoded into a blob of the outbox as it arrives, and the parsed request holds an
 * {@link AttachmentBlob} in the string's place; the request schema accepts it where it accepts the string and takes
 * the attachment's size from it. The outbox stores the request with these references (`{"$blob": name, "size": n}`),
 * and the processor revives them ({@link reviveAttachmentBlobs}) and uploads from the blob.
 *
 * A JSON document can never produce an instance of this class, so a caller cannot make the gateway read a blob by
 * sending a reference of its own: only the body reader and the processor's reading of a stored request create one.
 */

/** A large attachment's decoded content, stored as a blob of the outbox container. */
export class AttachmentBlob {
  /**
   * @param blobName The blob's name in the outbox container.
   * @param size Bytes the base64 decoded to (0 when it was not base64).
   * @param isBase64 Whether the text was base64 under the schema's rule; when not, the request is refused.
   * @param digest SHA-256 (hex) of the base64 text, taken as it streamed: what an `Idempotency-Key` compares the
   *   content by (see requestHash.ts). Absent for a reference revived from a stored request.
   */
  constructor(
    readonly blobName: string,
    readonly size: number,
    readonly isBase64: boolean = true,
    readonly digest?: string,
  ) {}

  /** The stored form in the outbox's copy of the request. */
  toJSON(): StoredAttachmentBlob {
    return { $blob: this.blobName, size: this.size };
  }
}

/** How the outbox's copy of a request writes an {@link AttachmentBlob}. */
export interface StoredAttachmentBlob {
  $blob: string;
  size: number;
}

/**
 * Turns the stored references of a request the outbox wrote back into {@link AttachmentBlob}s, in place; returns the
 * document. Only for documents the outbox wrote: a stored request validated when it was accepted, so whatever sits at
 * an attachment's `contentBase64` is a string or a reference the gateway made. A request stored before references
 * existed holds strings only and comes back unchanged.
 */
export function reviveAttachmentBlobs(document: unknown): unknown {
  const attachments = (document as { attachments?: unknown } | null)?.attachments;
  if (!Array.isArray(attachments)) return document;
  for (const attachment of attachments as { contentBase64?: unknown }[]) {
    const content = attachment?.contentBase64 as Partial<StoredAttachmentBlob> | undefined;
    if (content && typeof content === 'object' && typeof content.$blob === 'string' && typeof content.size === 'number')
      attachment.contentBase64 = new AttachmentBlob(content.$blob, content.size);
  }
  return document;
}

/** Reads attachment blobs (the outbox store). */
export interface AttachmentBlobReader {
  /** Bytes [start, end) of the blob, downloaded into `into`; returns the view of them in `into`. */
  readAttachmentRange(blobName: string, start: number, end: number, into: Buffer): Promise<Buffer>;
  /** The whole blob. */
  readAttachment(blobName: string): Promise<Buffer>;
}
