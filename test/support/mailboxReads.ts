/**
 * What the polling and reconciliation tests do to a watched mailbox through the emulator and the functions host:
 * deliver a mail straight into a folder, make a mailbox's folders due for a delta read now (the host's clock cannot
 * move), run a timer through the admin endpoint, and wait for the event of one message.
 */
import { randomUUID } from 'node:crypto';
import { TableClient } from '@azure/data-tables';
import type { CloudEvent, MailReceivedData } from '../../shared/events/cloudEvent';
import type { FunctionsHostProcess } from './functionsHost';
import type { TestCloud } from './testEnv';
import { eventually, type QueueReader } from './watchSupport';

/** Puts a new mail from an outside sender in `mailbox`'s Inbox, as Exchange's delivery would. */
export function deliverMail(env: TestCloud, mailbox: string) {
  return env.cloud.graph.mailbox(mailbox).addMessage('inbox', {
    subject: `m-${randomUUID()}`,
    from: { emailAddress: { address: 'sender@example.org', name: 'Sender' } },
    toRecipients: [{ emailAddress: { address: mailbox } }],
    body: { contentType: 'text', content: 'secret body text' },
  });
}

/** Makes every folder of `mailbox` due for a delta read now (or at `at`, ms), as if its interval had passed. */
export async function makeFoldersDue(env: TestCloud, mailbox: string, at = Date.now() - 1000): Promise<void> {
  const table = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, 'subscriptions', {
    allowInsecureConnection: true,
  });
  for await (const row of table.listEntities<{ mailbox: string }>({
    queryOptions: { filter: `PartitionKey eq 'mailbox' and mailbox eq '${mailbox}'` },
  })) {
    await table.updateEntity(
      { partitionKey: row.partitionKey!, rowKey: row.rowKey!, nextReadAt: new Date(at).toISOString() },
      'Merge',
    );
  }
}

/** The stored rows of `mailbox`'s folders: when each was last written (the table's Timestamp) and its next read. */
export async function folderRows(
  env: TestCloud,
  mailbox: string,
): Promise<Array<{ writtenAt: number; nextReadAt: number }>> {
  const table = TableClient.fromConnectionString(env.settings.AzureWebJobsStorage, 'subscriptions', {
    allowInsecureConnection: true,
  });
  const rows: Array<{ writtenAt: number; nextReadAt: number }> = [];
  for await (const row of table.listEntities<{ nextReadAt?: string }>({
    queryOptions: { filter: `PartitionKey eq 'mailbox' and mailbox eq '${mailbox}'` },
  })) {
    rows.push({ writtenAt: Date.parse(row.timestamp ?? ''), nextReadAt: Date.parse(row.nextReadAt ?? '') });
  }
  return rows;
}

/** Runs a timer or queue function of `host` now, through the admin endpoint (202 when started). */
export async function runFunctionNow(host: FunctionsHostProcess, name: string): Promise<number> {
  const res = await fetch(`${host.url}/admin/functions/${name}`, {
    method: 'POST',
    headers: { 'x-functions-key': host.masterKey, 'content-type': 'application/json' },
    body: '{}',
  });
  return res.status;
}

/** Every `mail.received` event seen so far for `messageId`. */
export async function eventsForMessage(
  events: QueueReader<CloudEvent<MailReceivedData>>,
  messageId: string,
): Promise<CloudEvent<MailReceivedData>[]> {
  await events.drain();
  return events.seen.filter((e) => e.data.messageId === messageId);
}

/** The first `mail.received` event for `messageId`, waiting up to a minute for it. */
export async function eventForMessage(
  events: QueueReader<CloudEvent<MailReceivedData>>,
  messageId: string,
): Promise<CloudEvent<MailReceivedData>> {
  const [event] = await eventually(
    async () => {
      const found = await eventsForMessage(events, messageId);
      return found.length > 0 && found;
    },
    `an event for message ${messageId}`,
    60_000,
  );
  return event;
}
