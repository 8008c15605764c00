/**
 * What a watched mailbox's `mail.received` events carry of the mail itself, opted into per mailbox with the body of
 * `PUT /api/mailboxes/{mailbox}`: the body (as text or HTML, up to `maxBodyBytes`) and the attachment list. Off by
 * default, as before the option existed: a PUT without a body, and a record stored before it, mean no content.
 */
import type { HttpRequest } from '@azure/functions';
import { z } from 'zod';
import { HttpProblem } from '../../platform/problems/httpProblem';
import { logValue } from '../../platform/logSafe';
import { problem } from '../../platform/problems/problem';
import { DEFAULT_FOLDER, watchFoldersSchema } from '../watchFolders';
import { readWebhookBody } from '../notifications/webhookBody';

/** The most of a body an event may carry: the signed webhook's limit (the queue's 64 KB cut it further). */
export const MAX_BODY_BYTES_LIMIT = 1_048_576;
/** What `maxBodyBytes` is when not given: the size of a Storage queue message. */
export const DEFAULT_MAX_BODY_BYTES = 65_536;
/** A watch request is a few dozen bytes; anything far larger is not one. */
const MAX_REQUEST_BYTES = 16_384;

/** The `content` member of a watch request. */
export const eventContentSchema = z
  .strictObject({
    body: z
      .enum(['none', 'text', 'html'])
      .default('none')
      .meta({ description: 'The body in events: none, as text, or as HTML (Graph converts it).' }),
    maxBodyBytes: z.int().min(1).max(MAX_BODY_BYTES_LIMIT).default(DEFAULT_MAX_BODY_BYTES).meta({
      description:
        'The most UTF-8 bytes of the body an event carries (at most 1,048,576) on the signed webhook; the `mail-events` queue message holds less (64 KB in all), and says `truncated`.',
    }),
    attachments: z
      .enum(['none', 'list'])
      .default('none')
      .meta({ description: 'The attachment list (no bytes: `links` name where to fetch them).' }),
  })
  .meta({ description: "What the mailbox's mail.received events carry of the mail itself." });

/** The body of `PUT /api/mailboxes/{mailbox}` (optional as a whole). */
export const watchRequestSchema = z
  .strictObject({
    content: eventContentSchema.optional(),
    folders: watchFoldersSchema,
    delivery: z.enum(['push', 'poll', 'auto']).default('auto').meta({
      description:
        'push: Graph subscriptions (needs WEBHOOK_BASE_URL); poll: the messages delta query every POLL_INTERVAL_SECONDS, no subscription; auto (default): push, falling back to polling while Graph cannot validate the webhook (or without WEBHOOK_BASE_URL), trying push again at each renewal run.',
    }),
  })
  .meta({
    description:
      'Optional: without it (or without `content`) the events carry metadata and links only, and the Inbox is watched.',
  });

/** A watch request, defaults filled in. */
export interface WatchRequest {
  content: EventContent;
  folders: string[];
  delivery: 'push' | 'poll' | 'auto';
}

/** A mailbox's content option, defaults filled in. */
export type EventContent = z.output<typeof eventContentSchema>;

/** No content: metadata and links only. */
export const NO_CONTENT: EventContent = { body: 'none', maxBodyBytes: DEFAULT_MAX_BODY_BYTES, attachments: 'none' };

/** True when the option asks for anything Mail.ReadBasic cannot read. */
export function wantsContent(content: EventContent | undefined): content is EventContent {
  return content !== undefined && (content.body !== 'none' || content.attachments !== 'none');
}

/**
 * The content option of a watch request: none for an empty body; 400 problems for a body that is not JSON or breaks
 * the schema, naming the field.
 */
export async function readWatchRequest(request: HttpRequest): Promise<WatchRequest> {
  const text = await readLimited(request, MAX_REQUEST_BYTES);
  if (text.trim() === '') return { content: NO_CONTENT, folders: [DEFAULT_FOLDER], delivery: 'auto' };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new HttpProblem(
      problem(
        400,
        'not-json',
        'The body is not a JSON object',
        'Send no body, or a JSON object such as {"content":{"body":"text"}}.',
      ),
    );
  }
  const parsed = watchRequestSchema.safeParse(json);
  if (parsed.success) {
    const { content, folders, delivery } = parsed.data;
    return { content: content ?? NO_CONTENT, folders, delivery };
  }
  const errors = parsed.error.issues.map((issue) => ({
    field: issue.path.map(String).join('.') || '(body)',
    message: issue.message,
  }));
  const detail = (cut: (s: string) => string) => errors.map((e) => `${cut(e.field)}: ${cut(e.message)}`).join('; ');
  throw new HttpProblem(
    problem(
      400,
      'validation',
      'The watch request is invalid',
      detail((s) => s),
      { errors },
    ),
    { logDetail: detail((s) => logValue(s)) },
  );
}

/** The body as text, read as it arrives and refused (413) at the first chunk past `limit` bytes, unread beyond it. */
async function readLimited(request: HttpRequest, limit: number): Promise<string> {
  const read = await readWebhookBody(request.body, limit);
  if (read.kind === 'tooLarge') {
    throw new HttpProblem(
      problem(413, 'too-large', 'The watch request is too large', `A watch request is at most ${limit} bytes.`, {
        limitBytes: limit,
      }),
    );
  }
  if (read.kind === 'clientGone') {
    throw new HttpProblem(problem(400, 'not-json', 'The body is not a JSON object', 'The body was cut off.'));
  }
  return read.bytes.toString('utf8');
}
