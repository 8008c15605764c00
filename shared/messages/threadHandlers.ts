/**
 * `POST /api/mailboxes/{mailbox}/messages/{id}/reply` and `.../forward`: a reply or forward goes through the outbox
 * exactly as `POST /api/mail/send` does (validation, Idempotency-Key, permission check, pacing, at most once,
 * `Prefer: wait`, status and events); see outbox/accept/sendMailHandler.ts. Before the body is read, the path is
 * judged: the mailbox's address, ALLOWED_READ_MAILBOXES (its mail may be answered) and the message id's shape, and
 * after validation the mailbox must be an allowed sender too, all before any Graph call. The processor builds the
 * mail as Graph's reply or forward draft of the original, so Exchange keeps the thread.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { parseMailboxPath } from '../mail/mailboxPath';
import { parseThreadRequest, type ThreadAction } from '../mail/threadRequest';
import { acceptMail, type SendMailDependencies } from '../outbox/accept/sendMailHandler';
import { parseGraphId } from './messageIds';
import { requireReadableMailbox } from './readPolicy';

/** Handles a reply (`action` reply) or a forward of one received message. */
export async function handleThreadMail(
  req: HttpRequest,
  context: InvocationContext,
  deps: SendMailDependencies,
  action: ThreadAction,
): Promise<HttpResponseInit> {
  // Judged in prepare(), inside the accept's error handling, so that a bad path is the same problem answer.
  let mailbox = '';
  let messageId = '';
  return acceptMail(req, context, deps, {
    operation: action,
    prepare: () => {
      mailbox = parseMailboxPath(req.params.mailbox ?? '');
      requireReadableMailbox(deps.config, mailbox);
      messageId = parseGraphId(req.params.id, 'message');
      return mailbox;
    },
    parse: (json) => parseThreadRequest(action, mailbox, messageId, json),
    // The same body answering another message, or from another mailbox, or as a forward, is another request.
    hashDocument: (json) => ({ action, mailbox, messageId, body: json }),
  });
}
