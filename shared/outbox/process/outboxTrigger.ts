/**
 * The `sendOutbox` queue trigger's work: reads the mail id from the `mail-outbox` message, lets the processor decide
 * and send, and logs the outcome by id and mailbox (never the subject, body or recipients). A storage or pacer
 * failure is thrown, so that the Functions host makes the message visible again and retries it (then moves it to
 * `mail-outbox-poison` after host.json's maxDequeueCount); the processor's attempt marker keeps a retry from
 * sending twice.
 */
import type { InvocationContext } from '@azure/functions';
import { describeForLog, redactSecrets } from '../../platform/logSafe';
import { failureLogLine } from '../../mail/failureLog';
import { queueTry } from '../../platform/queues/queueTrigger';
import { outboxMessage } from '../store/outboxMessages';
import { failAfterRetries, processOutboxMail, type OutboxProcessorDependencies } from './outboxProcessor';

/** Handles one `mail-outbox` message (the host has decoded its base64 JSON). */
export async function handleOutboxMessage(
  message: unknown,
  context: InvocationContext,
  deps: OutboxProcessorDependencies,
): Promise<void> {
  const parsed = outboxMessage.schema.safeParse(message);
  if (!parsed.success) {
    // Not ours to retry: nothing can make it valid. Dropped with a line an operator can find.
    context.warn(
      `mail-outbox message ignored: not an outbox message (${parsed.error.issues[0]?.message ?? 'invalid'})`,
    );
    return;
  }
  const { id, slotAt } = parsed.data;
  try {
    // The record as the processing left it says what the outcome was (status, ids, problem); no read-back.
    const { outcome, record, waiting } = await processOutboxMail(id, deps, slotAt);
    if (outcome === 'failed' && record?.problem) {
      const line = `${failureLogLine(record.problem, record.mailbox)} (outbox mail ${id})`;
      if (record.problem.status >= 500) context.error(line);
      else context.warn(line);
      return;
    }
    context.info(
      `outbox mail ${id} for ${record?.mailbox ?? '-'}: ${outcome}` +
        (record ? `; status ${record.status}, attempts ${record.attempts}, ${record.recipients} recipient(s)` : '') +
        (record?.requestIds.length ? `, request-id ${record.requestIds[record.requestIds.length - 1]}` : '') +
        (outcome === 'requeued' && (waiting ?? record?.reason)
          ? `; waiting: ${redactSecrets(waiting ?? record?.reason ?? '')}`
          : ''),
    );
  } catch (err) {
    const { tries, last } = queueTry(context);
    if (last) {
      const lastError = redactSecrets(err instanceof Error ? err.message.split('\n')[0] : String(err));
      // If even this fails, the host moves the message to mail-outbox-poison.
      await failAfterRetries(id, tries, lastError, deps);
      context.error(`outbox mail ${id} failed after ${tries} tries: ${describeForLog(err)}`);
      return;
    }
    context.warn(`outbox mail ${id} will be retried: ${describeForLog(err)}`);
    throw err;
  }
}
