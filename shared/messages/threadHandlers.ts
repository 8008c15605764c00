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
import type { Client } from '@microsoft/microsoft-graph-client';
import { acceptMail, type SendMailDependencies } from '../outbox/accept/sendMailHandler';
import { parseGraphId } from './messageIds';
import { answeredRecipients } from './threadRecipients';
import { requireReadableMailbox } from './readPolicy';

/** What the reply and forward routes need: the send route's parts, and a Graph client to read the original with. */
export type ThreadMailDependencies = SendMailDependencies & {
  /** Reads a reply's original for its recipients; it should not wait out throttling (the count then falls back). */
  originals: Client;
};

/** Handles a reply (`action` reply) or a forward of one received message. */
export async function handleThreadMail(
  req: HttpRequest,
  context: InvocationContext,
  deps: ThreadMailDependencies,
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
    answered: (request) => {
      const kind = request.thread?.kind;
      return kind === 'reply' || kind === 'replyAll'
        ? answeredRecipients(deps.originals, mailbox, messageId, kind)
        : Promise.resolve([]);
    },
  });
}
