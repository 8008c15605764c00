/**
 * Sends a validated request through Microsoft Graph as the `from` mailbox. Small messages take one
 * `POST /users/{from}/sendMail`; large ones (an attachment of 3 MB or more, or more JSON than one request may carry)
 * take the draft path: create the draft, upload each large attachment through an upload session in sequential
 * chunks of at most 4 MB (no Authorization header: the URL is pre-authenticated), then send the draft. Every Graph
 * call goes through the per-mailbox limiter and carries our own `client-request-id`.
 *
 * Memory: an uploaded attachment is never held whole. Each chunk is read just before its PUT into one reused
 * chunk-sized buffer: a ranged download of the attachment's blob (where the accept decoded a large attachment), or
 * decoded from an inline base64 string (a small one, or a request stored before attachment blobs existed). A small
 * attachment that travels inside a JSON request is read and encoded only when that request is built.
 */
import { randomUUID } from 'node:crypto';
import { GraphError, ResponseType, type Client } from '@microsoft/microsoft-graph-client';
import type { FileAttachment, Message } from '@microsoft/microsoft-graph-types';
import type { AttachmentBlobReader } from './attachmentBlob';
import { base64ScratchBytes, decodeBase64Range } from './base64Range';
import {
  attachmentJsonBytes,
  composeMessage,
  DELETE_AFTER_SUBMIT_PROPERTY,
  fileAttachment,
  jsonBytes,
  needsDraftPath,
  sendMailBody,
  SINGLE_REQUEST_BUDGET_BYTES,
} from './composeMessage';
import { MailboxLimiter } from './mailboxLimiter';
import { retryAfterSeconds } from '../graph/graphClient';
import { graphDispatcher } from '../platform/http/connectionPools';
import { credentialDependencyProblem } from './dependencyProblems';
import { graphProblem } from './sendProblems';
import { UPLOAD_SESSION_THRESHOLD_BYTES, type Attachment, type SendRequest, type ThreadRef } from './sendRequest';

/** Largest chunk PUT to an upload session (Graph: at most 4 MB per request). */
export const UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024;

/** How often one chunk is retried after a failure before the send fails. */
const CHUNK_ATTEMPTS = 4;

/** What a successful send reports. */
export interface SendOutcome {
  path: 'sendMail' | 'draft';
  /** Graph's `request-id` of the call that sent the message. */
  requestId?: string;
  /** Our `client-request-id` of that call. */
  clientRequestId: string;
  /** Graph calls made, including upload PUTs. */
  graphCalls: number;
  /** The conversation the message belongs to, when Graph said (a reply or forward's draft answers it). */
  conversationId?: string;
}

/** How one send is carried out. */
export interface SendOptions {
  /**
   * Awaited just before the call that submits the mail (sendMail, or the draft's send), after everything else:
   * the outbox confirms the mailbox's pace here. Throwing aborts the send before submission (a draft is deleted).
   */
  beforeSubmit?: () => Promise<void>;
}

/** A draft made, the Graph calls that took, and the attachments still to add to it. */
interface CreatedDraft {
  draftId: string;
  calls: number;
  remaining: Attachment[];
  conversationId?: string;
}

/** PidTagDeleteAfterSubmit when the mail keeps no Sent Items copy: the draft path's saveToSentItems=false. */
function deleteAfterSubmit(request: SendRequest): Pick<Message, 'singleValueExtendedProperties'> {
  return request.saveToSentItems
    ? {}
    : { singleValueExtendedProperties: [{ id: DELETE_AFTER_SUBMIT_PROPERTY, value: 'true' }] };
}

/**
 * `html` put above the quote of the draft Graph made: inside its `<body>` when it has one (Outlook's own layout),
 * else before it. A draft with no body gets `html` alone.
 */
export function aboveQuote(html: string, draftBody: Message['body']): string {
  const quoted = draftBody?.content ?? '';
  if (quoted === '') return html;
  const quote = draftBody?.contentType === 'text' ? `<pre>${escapeHtml(quoted)}</pre>` : quoted;
  const open = /<body[^>]*>/i.exec(quote);
  if (!open) return `${html}\r\n${quote}`;
  const at = open.index + open[0].length;
  return `${quote.slice(0, at)}\r\n${html}\r\n${quote.slice(at)}`;
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

interface CallResult {
  response: Response;
  clientRequestId: string;
}

/** What a sender uses besides its Graph client. */
export interface MailSenderOptions {
  /** Per-mailbox concurrency (a fresh one by default). */
  limiter?: MailboxLimiter;
  /** The fetch upload PUTs go through. */
  uploadFetch?: typeof fetch;
  /** Where attachments held as blobs are read from (the outbox store); a request with such an attachment needs it. */
  attachmentBlobs?: AttachmentBlobReader;
}

/** `fetch` over the process's Graph pool, for upload sessions (their URLs are Outlook's, outside the Graph SDK). */
const pooledFetch: typeof fetch = (input, init) => fetch(input, { ...init, dispatcher: graphDispatcher() });

/** Sends mail through one Graph client. */
export class MailSender {
  private readonly limiter: MailboxLimiter;
  private readonly uploadFetch: typeof fetch;
  private readonly attachmentBlobs: AttachmentBlobReader | undefined;

  constructor(
    private readonly graph: Client,
    options: MailSenderOptions = {},
  ) {
    this.limiter = options.limiter ?? new MailboxLimiter();
    this.uploadFetch = options.uploadFetch ?? pooledFetch;
    this.attachmentBlobs = options.attachmentBlobs;
  }

  /** Sends `request`; throws an `HttpProblem` with the caller's problem document on failure. */
  async send(request: SendRequest, options: SendOptions = {}): Promise<SendOutcome> {
    return needsDraftPath(request) ? this.sendViaDraft(request, options) : this.sendDirect(request, options);
  }

  private async sendDirect(request: SendRequest, options: SendOptions): Promise<SendOutcome> {
    const attachments: FileAttachment[] = [];
    for (const attachment of request.attachments) attachments.push(await this.fileAttachment(attachment));
    const body = sendMailBody(request, attachments);
    await options.beforeSubmit?.();
    const result = await this.call(request.from, 'post', `/users/${encodeURIComponent(request.from)}/sendMail`, body);
    return {
      path: 'sendMail',
      requestId: result.response.headers.get('request-id') ?? undefined,
      clientRequestId: result.clientRequestId,
      graphCalls: 1,
    };
  }

  private async sendViaDraft(request: SendRequest, options: SendOptions): Promise<SendOutcome> {
    const user = `/users/${encodeURIComponent(request.from)}`;
    const created = request.thread
      ? await this.createThreadDraft(request, request.thread)
      : await this.createDraft(request);
    let calls = created.calls;
    const { draftId, remaining } = created;
    const messagePath = `${user}/messages/${encodeURIComponent(draftId)}`;
    const small = remaining.filter((a) => a.size < UPLOAD_SESSION_THRESHOLD_BYTES);
    try {
      for (const attachment of small) {
        await this.call(request.from, 'post', `${messagePath}/attachments`, await this.fileAttachment(attachment));
        calls++;
      }
      for (const attachment of remaining.filter((a) => a.size >= UPLOAD_SESSION_THRESHOLD_BYTES)) {
        const session = await this.call(request.from, 'post', `${messagePath}/attachments/createUploadSession`, {
          AttachmentItem: {
            attachmentType: 'file',
            name: attachment.name,
            size: attachment.size,
            contentType: attachment.contentType,
            isInline: attachment.inline,
            ...(attachment.contentId ? { contentId: attachment.contentId } : {}),
          },
        });
        calls++;
        const { uploadUrl } = (await session.response.json()) as { uploadUrl: string };
        calls += await this.upload(request.from, uploadUrl, attachment);
      }
      await options.beforeSubmit?.();
      const sent = await this.call(request.from, 'post', `${messagePath}/send`, undefined);
      calls++;
      return {
        path: 'draft',
        requestId: sent.response.headers.get('request-id') ?? undefined,
        clientRequestId: sent.clientRequestId,
        graphCalls: calls,
        ...(created.conversationId ? { conversationId: created.conversationId } : {}),
      };
    } catch (err) {
      // Leave no half-built draft in the mailbox; the caller's failure matters more than the clean-up's.
      await this.call(request.from, 'delete', messagePath, undefined).catch(() => undefined);
      throw err;
    }
  }

  /**
   * A new mail's draft (`POST /users/{from}/messages`), small attachments riding in it while the measured request
   * fits; the attachments still to add come back.
   */
  private async createDraft(request: SendRequest): Promise<CreatedDraft> {
    const user = `/users/${encodeURIComponent(request.from)}`;
    const small = request.attachments.filter((a) => a.size < UPLOAD_SESSION_THRESHOLD_BYTES);
    const envelope: Message = {
      ...composeMessage(request),
      attachments: [],
      ...deleteAfterSubmit(request),
    };
    // Small attachments ride in the draft while the measured request fits; the rest are added one request each.
    let inDraft = 0;
    let budget = SINGLE_REQUEST_BUDGET_BYTES - jsonBytes(envelope);
    while (inDraft < small.length && attachmentJsonBytes(small[inDraft]) + 1 <= budget) {
      budget -= attachmentJsonBytes(small[inDraft]) + 1;
      inDraft++;
    }
    const inDraftAttachments: FileAttachment[] = [];
    for (const attachment of small.slice(0, inDraft)) inDraftAttachments.push(await this.fileAttachment(attachment));
    const draft: Message = { ...envelope, attachments: inDraftAttachments };
    const created = await this.call(request.from, 'post', `${user}/messages`, draft);
    const draftId = ((await created.response.json()) as { id: string }).id;
    const riding = new Set(small.slice(0, inDraft));
    return { draftId, calls: 1, remaining: request.attachments.filter((a) => !riding.has(a)) };
  }

  /**
   * A reply or forward's draft, made by Graph from the original (createReply, createReplyAll, createForward) so that
   * Exchange keeps the thread (conversationId, In-Reply-To, References) and quotes the original below the new part.
   * The new part goes in as `comment` when it is text: Graph refuses `comment` together with `message.body`, and a
   * `message.body` replaces the draft's whole body, quote included. HTML goes into the draft Graph made, above its
   * quote, with one PATCH (with the caller's Cc added to those a reply-all already has). The draft's
   * internetMessageId, headers and Sent Items choice go in when it is created, as for a new mail's draft.
   */
  private async createThreadDraft(request: SendRequest, thread: ThreadRef): Promise<CreatedDraft> {
    const user = `/users/${encodeURIComponent(request.from)}`;
    const action = { reply: 'createReply', replyAll: 'createReplyAll', forward: 'createForward' }[thread.kind];
    const composed = composeMessage(request);
    const keepsCc = thread.kind !== 'replyAll';
    const message: Message = {
      ...(thread.kind === 'forward' ? { toRecipients: composed.toRecipients } : {}),
      ...(keepsCc && request.cc.length > 0 ? { ccRecipients: composed.ccRecipients } : {}),
      ...(request.bcc.length > 0 ? { bccRecipients: composed.bccRecipients } : {}),
      ...(composed.internetMessageHeaders ? { internetMessageHeaders: composed.internetMessageHeaders } : {}),
      ...(request.internetMessageId ? { internetMessageId: request.internetMessageId } : {}),
      ...deleteAfterSubmit(request),
    };
    const params = {
      ...(request.body.contentType === 'text' ? { comment: request.body.content } : {}),
      message,
    };
    const path = `${user}/messages/${encodeURIComponent(thread.messageId)}/${action}`;
    const created = await this.call(request.from, 'post', path, params, { original: thread.messageId });
    const draft = (await created.response.json()) as Message & { id: string };
    let calls = 1;
    const patch: Message = {};
    if (!keepsCc && request.cc.length > 0)
      patch.ccRecipients = [...(draft.ccRecipients ?? []), ...(composed.ccRecipients ?? [])];
    if (request.body.contentType === 'html') {
      patch.body = { contentType: 'html', content: aboveQuote(request.body.content, draft.body) };
    }
    if (Object.keys(patch).length > 0) {
      const messagePath = `${user}/messages/${encodeURIComponent(draft.id)}`;
      try {
        await this.call(request.from, 'patch', messagePath, patch);
      } catch (err) {
        await this.call(request.from, 'delete', messagePath, undefined).catch(() => undefined);
        throw err;
      }
      calls++;
    }
    return {
      draftId: draft.id,
      calls,
      remaining: request.attachments,
      ...(draft.conversationId ? { conversationId: draft.conversationId } : {}),
    };
  }

  /** `attachment` as a Graph file attachment, its content read from its blob or taken as it is. */
  private async fileAttachment(attachment: Attachment): Promise<FileAttachment> {
    const { content } = attachment;
    if (typeof content === 'string') return fileAttachment(attachment, content);
    return fileAttachment(attachment, (await this.blobs().readAttachment(content.blobName)).toString('base64'));
  }

  private blobs(): AttachmentBlobReader {
    if (!this.attachmentBlobs) throw new Error('an attachment is held as a blob, but this sender reads no blobs');
    return this.attachmentBlobs;
  }

  /**
   * PUTs the attachment's bytes in order, each chunk read (or decoded from its base64) just before it is sent,
   * resuming from the session's `nextExpectedRanges` after a failed chunk; returns PUTs made.
   */
  private async upload(mailbox: string, uploadUrl: string, attachment: Attachment): Promise<number> {
    const total = attachment.size;
    const { content } = attachment;
    // One buffer for every chunk: fetch copies a byte body when the request is made, so reusing it is safe.
    const scratch = Buffer.allocUnsafe(base64ScratchBytes(UPLOAD_CHUNK_BYTES));
    let offset = 0;
    let puts = 0;
    let failures = 0;
    while (offset < total) {
      const end = Math.min(offset + UPLOAD_CHUNK_BYTES, total) - 1;
      const chunk =
        typeof content === 'string'
          ? decodeBase64Range(content, offset, end + 1, scratch)
          : await this.blobs().readAttachmentRange(content.blobName, offset, end + 1, scratch);
      puts++;
      const response = await this.limiter
        .run(mailbox, () =>
          this.uploadFetch(uploadUrl, {
            method: 'PUT',
            headers: {
              'content-range': `bytes ${offset}-${end}/${total}`,
              'content-type': 'application/octet-stream',
            },
            body: chunk,
          }),
        )
        .catch((err: unknown) => err as Error);
      if (!(response instanceof Error) && (response.status === 200 || response.status === 201)) {
        if (response.status === 201) {
          await response.arrayBuffer();
          return puts;
        }
        const next = nextExpectedStart((await response.json()) as { nextExpectedRanges?: string[] });
        offset = next ?? end + 1;
        failures = 0;
        continue;
      }
      failures++;
      const status = response instanceof Error ? undefined : response.status;
      const body = response instanceof Error ? undefined : await response.text();
      if (
        failures >= CHUNK_ATTEMPTS ||
        (status !== undefined && status < 500 && status !== 416 && status !== 429 && status !== 409)
      ) {
        throw graphProblem(
          uploadError(status, body, response instanceof Error ? response : undefined),
          { clientRequestId: '' },
          mailbox,
        );
      }
      const resumeAt = body ? nextExpectedStart(safeJson(body)) : undefined;
      if (resumeAt !== undefined) offset = resumeAt;
      const wait = response instanceof Error ? undefined : retryAfterSeconds(response.headers);
      await new Promise((r) => setTimeout(r, wait !== undefined ? wait * 1000 : 250 * 2 ** failures));
    }
    return puts;
  }

  /** One Graph call through the limiter; a non-2xx answer becomes an `HttpProblem`. */
  private async call(
    mailbox: string,
    method: 'post' | 'patch' | 'delete',
    path: string,
    body: unknown,
    about: { original?: string } = {},
  ): Promise<CallResult> {
    const clientRequestId = randomUUID();
    const response = await this.limiter
      .run(mailbox, () => {
        const req = this.graph
          .api(path)
          .header('client-request-id', clientRequestId)
          .header('return-client-request-id', 'true')
          .responseType(ResponseType.RAW);
        return (
          method === 'post'
            ? body === undefined
              ? req.header('content-length', '0').post(undefined)
              : req.post(body)
            : method === 'patch'
              ? req.patch(body)
              : req.delete()
        ) as Promise<Response>;
      })
      .catch((err: unknown) => {
        // No token (Key Vault or Entra ID failed) is the gateway's outage, not Graph's answer.
        throw credentialDependencyProblem(err) ?? graphProblem(err, { clientRequestId }, mailbox);
      });
    if (!response.ok) {
      throw graphProblem(await toGraphError(response), { clientRequestId, ...about }, mailbox);
    }
    return { response, clientRequestId };
  }
}

function safeJson(text: string): { nextExpectedRanges?: string[] } {
  try {
    return JSON.parse(text) as { nextExpectedRanges?: string[] };
  } catch {
    return {};
  }
}

function nextExpectedStart(body: { nextExpectedRanges?: string[] }): number | undefined {
  const first = body.nextExpectedRanges?.[0];
  const start = first ? Number(first.split('-')[0]) : NaN;
  return Number.isInteger(start) ? start : undefined;
}

/** Builds the SDK's GraphError from a raw error response, as the SDK does for non-RAW calls. */
async function toGraphError(response: Response): Promise<GraphError> {
  const text = await response.text();
  const body = safeJson(text) as {
    error?: { code?: string; message?: string; innerError?: { 'request-id'?: string } };
  };
  const error = new GraphError(response.status, body.error?.message ?? (text.slice(0, 500) || response.statusText));
  error.code = body.error?.code ?? null;
  error.requestId = response.headers.get('request-id') ?? body.error?.innerError?.['request-id'] ?? null;
  error.headers = response.headers;
  error.body = text;
  return error;
}

function uploadError(status: number | undefined, body: string | undefined, cause?: Error): GraphError | Error {
  if (status === undefined) return cause ?? new Error('upload failed');
  const parsed = safeJson(body ?? '') as { error?: { code?: string; message?: string } };
  const error = new GraphError(status, parsed.error?.message ?? `upload session answered ${status}`);
  error.code = parsed.error?.code ?? null;
  return error;
}
