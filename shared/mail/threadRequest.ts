/**
 * The reply and forward contracts (`POST /api/mailboxes/{mailbox}/messages/{id}/reply` and `.../forward`): the same
 * field rules as `POST /api/mail/send` (addresses, attachments, headers, `sendAt`), without what Exchange takes from
 * the original (subject, and for a reply the recipients). A validated body becomes a {@link SendRequest} from the
 * mailbox with its {@link ThreadRef}, which the sender builds as Graph's reply or forward draft.
 */
import { z } from 'zod';
import {
  address,
  attachmentsSchema,
  bodyOf,
  headersSchema,
  MAX_RECIPIENTS,
  normaliseAttachments,
  normaliseRecipients,
  recipients,
  sendAtSchema,
  validateBody,
  type FieldProblem,
  type SendRequest,
  type ThreadRef,
} from './sendRequest';

/** The fields a reply and a forward share. */
const common = {
  cc: recipients,
  bcc: recipients,
  text: z.string({ error: 'must be a string' }).optional(),
  html: z.string({ error: 'must be a string' }).optional(),
  headers: headersSchema,
  attachments: attachmentsSchema,
  saveToSentItems: z.boolean({ error: 'must be true or false' }).default(true),
  sendAt: sendAtSchema,
};

/** Exactly one of text and html; at most 500 recipients in the lists the caller gives. */
function threadRules(lists: readonly string[]) {
  return (req: Record<string, unknown>, ctx: z.RefinementCtx): void => {
    if ((req.text === undefined) === (req.html === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['text'], message: 'give exactly one of text or html' });
    }
    const given = lists.map((name) => req[name]);
    if (given.some((list) => list !== undefined && !Array.isArray(list))) return;
    const count = given.reduce<number>((sum, list) => sum + (Array.isArray(list) ? list.length : 0), 0);
    if (count > MAX_RECIPIENTS) {
      ctx.addIssue({
        code: 'custom',
        path: [lists[0]],
        message: `at most ${MAX_RECIPIENTS} recipients in ${lists.join(', ')} together (got ${count})`,
      });
    }
  };
}

/** Runs the rules whenever the body is an object, so they are reported with the fields' own problems. */
const whenObject = {
  when: (payload: { value: unknown }) =>
    typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value),
};

/** The body of `POST .../messages/{id}/reply`. */
export const replyRequestSchema = z
  .strictObject({
    ...common,
    replyAll: z
      .boolean({ error: 'must be true or false' })
      .default(false)
      .meta({ description: 'Answer everyone the original went to (createReplyAll), not only its sender.' }),
  })
  .superRefine(threadRules(['cc', 'bcc']), whenObject);

/** The body of `POST .../messages/{id}/forward`. */
export const forwardRequestSchema = z
  .strictObject({
    ...common,
    to: z
      .array(z.union([address, z.strictObject({ address, name: z.string().max(256).optional() })]), {
        error: 'must be an array of recipients',
      })
      .min(1, { message: 'a forward needs at least one recipient in to' }),
  })
  .superRefine(threadRules(['to', 'cc', 'bcc']), whenObject);

/** Which contract a body is read with. */
export type ThreadAction = 'reply' | 'forward';

/**
 * Validates a reply or forward body for `mailbox`'s message `messageId`. A stored request is read again with the
 * same function, with the thread its record keeps.
 */
export function parseThreadRequest(
  action: ThreadAction,
  mailbox: string,
  messageId: string,
  json: unknown,
): { ok: true; request: SendRequest } | { ok: false; problems: FieldProblem[] } {
  const base = (
    r: z.infer<typeof replyRequestSchema> | z.infer<typeof forwardRequestSchema>,
    thread: ThreadRef,
  ): SendRequest => ({
    from: mailbox,
    to: [],
    cc: normaliseRecipients(r.cc),
    bcc: normaliseRecipients(r.bcc),
    replyTo: [],
    subject: '',
    body: bodyOf(r),
    importance: 'normal',
    headers: r.headers ?? {},
    attachments: normaliseAttachments(r.attachments),
    saveToSentItems: r.saveToSentItems,
    ...(r.sendAt !== undefined ? { sendAt: Date.parse(r.sendAt) } : {}),
    thread,
  });
  if (action === 'reply') {
    const parsed = validateBody(replyRequestSchema, json);
    if (!parsed.ok) return parsed;
    const kind = parsed.data.replyAll ? 'replyAll' : 'reply';
    return { ok: true, request: base(parsed.data, { kind, messageId }) };
  }
  const parsed = validateBody(forwardRequestSchema, json);
  if (!parsed.ok) return parsed;
  return {
    ok: true,
    request: { ...base(parsed.data, { kind: 'forward', messageId }), to: normaliseRecipients(parsed.data.to) },
  };
}
