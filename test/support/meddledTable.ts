/**
 * A table client whose every read is followed by another instance's write to the same row, so that every
 * If-Match the caller then sends fails with a real 412: how the pacer's tests make a row contended for good.
 */
import type { TableClient } from '@azure/data-tables';

/** A client from `newClient()` whose `getEntity` lets a second client from `newClient()` change the row it read. */
export function meddledTableClient(newClient: () => TableClient): TableClient {
  const meddler = newClient();
  return new Proxy(newClient(), {
    get(target, prop, receiver) {
      if (prop === 'getEntity') {
        return async (partitionKey: string, rowKey: string) => {
          const entity = await target.getEntity(partitionKey, rowKey);
          await meddler.updateEntity({ partitionKey, rowKey }, 'Merge');
          return entity;
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
