/**
 * The message API's acting routes: mark read or unread, categorize and flag (`PATCH`), move (`POST .../move`, which
 * gives the message a new id), delete. The body is checked with zod (unknown fields refused) and the token's
 * Mail.ReadWrite judged before Graph is called.
 */
import type { HttpRequest } from '@azure/functions';
import { z } from 'zod';
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';
import { FOLDER } from './listQuery';
import { deleteMessage, moveMessage, updateMessage } from './messageGraph';
import { jsonAnswer, messageHandler } from './messageHandler';
import { parseGraphId } from './messageIds';
import { requireMessagePermission } from './messageProblems';
import { invalidMessageRequest } from './messageRequest';
import { listItemView } from './messageView';

/** Largest action body read (a PATCH with many categories is a few KB). */
const MAX_ACTION_BODY_BYTES = 64 * 1024;

/** `PATCH .../messages/{id}`: what may change. */
export const messagePatchSchema = z
  .object({
    isRead: z.boolean().optional(),
    categories: z.array(z.string().min(1).max(255)).max(25).optional(),
    flag: z.enum(['flagged', 'complete', 'notFlagged']).optional(),
  })
  .strict()
  .refine((patch) => Object.keys(patch).length > 0, { message: 'name at least one of isRead, categories, flag' });

/** `POST .../messages/{id}/move`: where to. */
export const messageMoveSchema = z
  .object({
    folder: z
      .string()
      .regex(FOLDER, 'must be a well-known folder name (inbox, archive, deleteditems, ...) or a folder id'),
  })
  .strict();

/** `PATCH .../messages/{id}`: answers the message's listing view after the change. */
export const handleMessagePatch = messageHandler('message update', async (mailbox, request, _context, deps) => {
  const id = parseGraphId(request.params.id, 'message');
  const changes = await readBody(request, messagePatchSchema);
  await requireMessagePermission(deps.config, deps.credential, 'write');
  const updated = await updateMessage(deps.graph, mailbox, id, changes);
  return jsonAnswer(200, listItemView(mailbox, { ...updated, id: updated.id ?? id }));
});

/** `POST .../messages/{id}/move`: answers the moved message with its new id. */
export const handleMessageMove = messageHandler('message move', async (mailbox, request, _context, deps) => {
  const id = parseGraphId(request.params.id, 'message');
  const { folder } = await readBody(request, messageMoveSchema);
  await requireMessagePermission(deps.config, deps.credential, 'write');
  const moved = await moveMessage(deps.graph, mailbox, id, folder);
  return jsonAnswer(200, { ...listItemView(mailbox, moved), previousId: id });
});

/** `DELETE .../messages/{id}`: 204 once Graph deleted it. */
export const handleMessageDelete = messageHandler('message delete', async (mailbox, request, _context, deps) => {
  const id = parseGraphId(request.params.id, 'message');
  await requireMessagePermission(deps.config, deps.credential, 'write');
  await deleteMessage(deps.graph, mailbox, id);
  return { status: 204 };
});

/** The JSON body, at most {@link MAX_ACTION_BODY_BYTES}, as `schema` takes it; 400/413 otherwise. */
async function readBody<T>(request: HttpRequest, schema: z.ZodType<T>): Promise<T> {
  const text = await readText(request);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new HttpProblem(problem(400, 'not-json', 'The body is not a JSON object', 'The body is not valid JSON.'));
  }
  const result = schema.safeParse(json);
  if (result.success) return result.data;
  throw invalidMessageRequest(
    result.error.issues.map((issue) => ({
      field: issue.path.length > 0 ? issue.path.join('.') : 'body',
      message: issue.code === 'unrecognized_keys' ? `has unknown field(s) ${issue.keys.join(', ')}` : issue.message,
    })),
  );
}

async function readText(request: HttpRequest): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const chunk of request.body as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      if (size > MAX_ACTION_BODY_BYTES) {
        throw new HttpProblem(
          problem(413, 'too-large', 'Too large', `The body is over ${MAX_ACTION_BODY_BYTES} bytes.`, {
            limitBytes: MAX_ACTION_BODY_BYTES,
          }),
        );
      }
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}
