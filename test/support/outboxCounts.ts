/**
 * What accepted sends have left in the outbox's table and queue, read as a caller with the storage account would:
 * tests of refused requests assert that nothing was stored.
 */
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { OUTBOX_QUEUE, OUTBOX_TABLE } from '../../shared/outbox/store/outboxStore';

/** Outbox records and (approximately counted) outbox queue messages; 0 for a table or queue not yet created. */
export async function outboxRecordsAndMessages(connection: string): Promise<{ records: number; messages: number }> {
  const table = TableClient.fromConnectionString(connection, OUTBOX_TABLE, { allowInsecureConnection: true });
  let records = 0;
  try {
    for await (const entity of table.listEntities()) if (entity) records++;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  const queue = new QueueClient(connection, OUTBOX_QUEUE);
  const messages = (await queue.exists()) ? ((await queue.getProperties()).approximateMessagesCount ?? 0) : 0;
  return { records, messages };
}
