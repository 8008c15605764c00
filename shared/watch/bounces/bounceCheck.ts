/**
 * Where watching meets bounces: a new message of a watched Inbox whose listed metadata looks like a non-delivery
 * report is read once more (headers and body, which the event's `$select` leaves out) and, when it is one, handed to
 * the {@link BounceHandler} the composition root injects (the outbox's, which matches it to a sent mail). Watching
 * sits below the outbox in the layers, so it knows the handler only by this interface.
 */
import { GraphError, type Client } from '@microsoft/microsoft-graph-client';
import type { Message } from '@microsoft/microsoft-graph-types';
import { mayBeNondeliveryReport, parseNondeliveryReport, type NondeliveryReport } from './nondeliveryReport';

/** A report that arrived in a mailbox. */
export interface ReceivedReport {
  /** Lower-case address of the mailbox it arrived in. */
  mailbox: string;
  /** Its Graph message id. */
  ndrMessageId: string;
  receivedDateTime: string | null;
  report: NondeliveryReport;
}

/** Matches a report to a mail the gateway sent and announces it; says what it did (for the log). */
export interface BounceHandler {
  handle(received: ReceivedReport): Promise<string>;
}

/** The properties a report is read with. */
const REPORT_SELECT = 'id,from,subject,receivedDateTime,internetMessageHeaders,body';

/**
 * Checks `listed` (a new message of `mailbox`'s Inbox, with at least `from` and `subject`): undefined when it is no
 * report (nothing was read for most mail), else what the handler did. Throws Graph's errors but a 404 (the message
 * went away: nothing to check).
 */
export async function checkForBounce(
  graph: Client,
  handler: BounceHandler,
  mailbox: string,
  listed: Pick<Message, 'from' | 'subject'> & { id: string },
): Promise<string | undefined> {
  if (!mayBeNondeliveryReport(listed)) return undefined;
  let message: Message & { id: string };
  try {
    message = (await graph
      .api(`/users/${encodeURIComponent(mailbox)}/messages/${encodeURIComponent(listed.id)}`)
      .select(REPORT_SELECT)
      .header('Prefer', 'outlook.body-content-type="text"')
      .get()) as Message & { id: string };
  } catch (err) {
    if (err instanceof GraphError && err.statusCode === 404) return undefined;
    throw err;
  }
  const report = parseNondeliveryReport(message);
  if (!report) return undefined;
  return handler.handle({
    mailbox: mailbox.toLowerCase(),
    ndrMessageId: listed.id,
    receivedDateTime: message.receivedDateTime ?? null,
    report,
  });
}
