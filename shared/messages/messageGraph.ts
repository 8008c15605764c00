/**
 * The message API's Graph calls: list, read, read attachments, stream `$value`, update, move, delete. Every path is
 * built here from checked parts only (the parsed mailbox, ids from {@link graphIdSegment}, a folder of Graph's id
 * alphabet), on the Graph client's own root, so nothing a caller sends can change the host or add a path segment.
 */
import type { Readable } from 'node:stream';
import { GraphError, ResponseType, type Client } from '@microsoft/microsoft-graph-client';
import type { Attachment } from '@microsoft/microsoft-graph-types';
import { NODE_BODY_OPTION, takeNodeBody } from '../graph/graphTransport';
import type { PageStart } from './listCursor';
import { graphListQuery, type ListParams } from './listQuery';
import { graphIdSegment } from './messageIds';
import { ATTACHMENT_SELECT, LIST_SELECT, MESSAGE_SELECT_ONE, type FlagStatus, type GraphMessage } from './messageView';

/** A page of a listing as Graph answered it. */
export interface GraphPage {
  value: GraphMessage[];
  nextLink?: string;
}

/** Which body to read, if any. */
export type BodyChoice = 'text' | 'html' | 'none';

/** A `$value` answer whose body has not been read: its stream, type and length. */
export interface GraphStream {
  body: Readable;
  contentType: string | null;
  contentLength: number | null;
}

/** What a PATCH changes. */
export interface MessageChanges {
  isRead?: boolean;
  categories?: string[];
  flag?: FlagStatus;
}

const user = (mailbox: string) => `/users/${encodeURIComponent(mailbox)}`;
const message = (mailbox: string, id: string) => `${user(mailbox)}/messages/${graphIdSegment(id)}`;

/** One page of `mailbox`'s listing from `start` (the first page when undefined). */
export async function listMessages(
  graph: Client,
  mailbox: string,
  params: ListParams,
  start?: PageStart,
): Promise<GraphPage> {
  const query: Record<string, string | number> = { ...graphListQuery(params), $select: LIST_SELECT };
  if (start && 'skip' in start) query.$skip = start.skip;
  if (start && 'skiptoken' in start) query.$skiptoken = start.skiptoken;
  const page = (await graph
    .api(`${user(mailbox)}/mailFolders/${encodeURIComponent(params.folder)}/messages`)
    .query(query)
    .get()) as { value?: GraphMessage[]; '@odata.nextLink'?: string };
  return { value: page.value ?? [], ...(page['@odata.nextLink'] ? { nextLink: page['@odata.nextLink'] } : {}) };
}

/** One message with the body asked for (and `uniqueBody` when `unique`). */
export async function getMessage(
  graph: Client,
  mailbox: string,
  id: string,
  options: { body: BodyChoice; unique: boolean },
): Promise<GraphMessage> {
  const select = [MESSAGE_SELECT_ONE];
  if (options.body !== 'none') select.push(options.unique ? 'uniqueBody' : 'body');
  let request = graph.api(message(mailbox, id)).select(select.join(','));
  if (options.body !== 'none') request = request.header('Prefer', `outlook.body-content-type="${options.body}"`);
  return (await request.get()) as GraphMessage;
}

/** The message's attachments, without their bytes. */
export async function listAttachments(graph: Client, mailbox: string, id: string): Promise<Attachment[]> {
  const page = (await graph
    .api(`${message(mailbox, id)}/attachments`)
    .select(ATTACHMENT_SELECT)
    .get()) as { value?: Attachment[] };
  return page.value ?? [];
}

/** One attachment's properties, without its bytes. */
export async function getAttachment(
  graph: Client,
  mailbox: string,
  id: string,
  attachmentId: string,
): Promise<Attachment> {
  return (await graph
    .api(`${message(mailbox, id)}/attachments/${graphIdSegment(attachmentId)}`)
    .select(ATTACHMENT_SELECT)
    .get()) as Attachment;
}

/** An attachment's raw contents (a file's bytes, an attached item as MIME), not yet read. */
export function attachmentValue(
  graph: Client,
  mailbox: string,
  id: string,
  attachmentId: string,
): Promise<GraphStream> {
  return rawValue(graph, `${message(mailbox, id)}/attachments/${graphIdSegment(attachmentId)}/$value`);
}

/** The message as MIME, not yet read. */
export function mimeValue(graph: Client, mailbox: string, id: string): Promise<GraphStream> {
  return rawValue(graph, `${message(mailbox, id)}/$value`);
}

/** Updates the message; answers it as Graph does after the change. */
export async function updateMessage(
  graph: Client,
  mailbox: string,
  id: string,
  changes: MessageChanges,
): Promise<GraphMessage> {
  const patch: Record<string, unknown> = {};
  if (changes.isRead !== undefined) patch.isRead = changes.isRead;
  if (changes.categories !== undefined) patch.categories = changes.categories;
  if (changes.flag !== undefined) patch.flag = { flagStatus: changes.flag };
  return (await graph.api(message(mailbox, id)).patch(patch)) as GraphMessage;
}

/** Moves the message to `folder`; answers the moved message, which has a new id. */
export async function moveMessage(graph: Client, mailbox: string, id: string, folder: string): Promise<GraphMessage> {
  return (await graph.api(`${message(mailbox, id)}/move`).post({ destinationId: folder })) as GraphMessage;
}

/** Deletes the message (Exchange keeps it in Recoverable Items). */
export async function deleteMessage(graph: Client, mailbox: string, id: string): Promise<void> {
  await graph.api(message(mailbox, id)).delete();
}

/**
 * GET `path` with the answer's body left unread: the SDK's RAW response, its body a Node stream (graphTransport.ts),
 * so the bytes stream through instead of being read whole. A RAW answer is not checked by the SDK, so a refusal is
 * read here (its JSON error is small) and thrown as the SDK's own GraphError, with the answer's headers for the
 * request ids and Retry-After.
 */
async function rawValue(graph: Client, path: string): Promise<GraphStream> {
  const response = (await graph
    .api(path)
    .option(NODE_BODY_OPTION, true)
    .responseType(ResponseType.RAW)
    .get()) as Response;
  const body = takeNodeBody(response);
  if (!response.ok || !body) {
    body?.destroy();
    const text = await response.text().catch(() => '');
    let error: { code?: string; message?: string; innerError?: { 'request-id'?: string } } = {};
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
    } catch {
      // Not Graph's JSON error: the status says what there is to say.
    }
    const failure = new GraphError(response.status, error.message ?? `Graph answered ${response.status}`);
    failure.code = error.code ?? null;
    failure.requestId = error.innerError?.['request-id'] ?? response.headers.get('request-id');
    failure.headers = response.headers;
    throw failure;
  }
  const length = Number(response.headers.get('content-length'));
  return {
    body,
    contentType: response.headers.get('content-type'),
    contentLength:
      Number.isSafeInteger(length) && length >= 0 && response.headers.has('content-length') ? length : null,
  };
}
