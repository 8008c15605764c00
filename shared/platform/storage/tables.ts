/**
 * Table and queue plumbing shared by the stores: create-once (Azurite starts empty; in Azure, infra/ creates them
 * and a create is a cheap no-op), keys that Table storage accepts, and purging records past their `expiresAt`.
 */
import { odata, RestError, type TableClient, type TransactionAction } from '@azure/data-tables';
import type { QueueClient } from '@azure/storage-queue';

const created = new WeakMap<TableClient | QueueClient, Promise<void>>();

/** Creates the table once per client (retried on the next call after a failure). */
export function ensureTable(table: TableClient): Promise<void> {
  let ready = created.get(table);
  if (!ready) {
    ready = table.createTable().catch((err: unknown) => {
      created.delete(table);
      throw err;
    });
    created.set(table, ready);
  }
  return ready;
}

/** Creates the queue once per client (retried on the next call after a failure). */
export function ensureQueue(queue: QueueClient): Promise<void> {
  let ready = created.get(queue);
  if (!ready) {
    ready = queue.createIfNotExists().then(
      () => undefined,
      (err: unknown) => {
        created.delete(queue);
        throw err;
      },
    );
    created.set(queue, ready);
  }
  return ready;
}

/** A partition or row key for any text: Table storage forbids `/ \ # ?` and control characters in keys. */
export function tableKey(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** True for the storage error `status` (e.g. 404, 409, 412). */
export function isStatus(err: unknown, status: number): boolean {
  return err instanceof RestError && err.statusCode === status;
}

/**
 * Deletes every entity whose `expiresAt` is before `now`, in batches of up to 100 per partition (one transaction
 * each). Returns how many were deleted. A concurrent purge deleting the same rows is harmless.
 */
export async function purgeExpired(table: TableClient, now: Date): Promise<number> {
  await ensureTable(table);
  const byPartition = new Map<string, string[]>();
  const expired = table.listEntities<{ partitionKey: string; rowKey: string }>({
    queryOptions: { filter: odata`expiresAt lt ${now}`, select: ['PartitionKey', 'RowKey'] },
  });
  for await (const entity of expired) {
    const rows = byPartition.get(entity.partitionKey) ?? [];
    rows.push(entity.rowKey);
    byPartition.set(entity.partitionKey, rows);
  }
  let deleted = 0;
  for (const [partitionKey, rows] of byPartition) {
    for (let i = 0; i < rows.length; i += 100) {
      const actions: TransactionAction[] = rows
        .slice(i, i + 100)
        .map((rowKey) => ['delete', { partitionKey, rowKey }] as TransactionAction);
      try {
        await table.submitTransaction(actions);
        deleted += actions.length;
      } catch (err) {
        // A row deleted meanwhile fails the whole transaction: fall back to one delete each.
        if (!isStatus(err, 404)) throw err;
        for (const [, entity] of actions) {
          await table.deleteEntity(entity.partitionKey, entity.rowKey).then(
            () => deleted++,
            (e: unknown) => {
              if (!isStatus(e, 404)) throw e;
            },
          );
        }
      }
    }
  }
  return deleted;
}
