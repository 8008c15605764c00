/**
 * The LokiJS fix loaded into Azurite's queue service: what a collection holds and finds is unchanged, and a batch
 * removal of no document or of one (Azurite does both for every message) no longer rebuilds the binary indices (a
 * rebuild replaces the index object, which is how these tests see it).
 */
import { createRequire } from 'node:module';
import { applyLokiBatchFix, type LokiCollectionMethods } from '../emulators/lokiBatchFix';

interface Doc {
  $loki?: number;
  queueName: string;
  visible: number;
}

interface Collection {
  data: Doc[];
  binaryIndices: Record<string, { values: number[] }>;
  insert(doc: Doc[]): Doc[];
  remove(doc: Doc | Doc[]): void;
  findAndRemove(query: object): void;
  update(doc: Doc | Doc[]): void;
  chain(): { find(query: object): { simplesort(field: string): { data(): Doc[] } } };
}

type LokiConstructor = new (name: string) => {
  addCollection(name: string, options: { indices: string[] }): Collection;
};

// The LokiJS Azurite loads, resolved from Azurite's own directory as the fix does.
const Loki = createRequire(require.resolve('azurite'))('lokijs') as LokiConstructor & {
  Collection: { prototype: LokiCollectionMethods };
};
applyLokiBatchFix(Loki.Collection.prototype);

/** A collection shaped like Azurite's messages: indexed on the queue and on the visibility time. */
function messages(count: number): Collection {
  const coll = new Loki('test').addCollection('messages', { indices: ['queueName', 'visible'] });
  coll.insert(
    Array.from({ length: count }, (_, i) => ({ queueName: i % 3 === 0 ? 'a' : 'b', visible: (i * 7919) % 1000 })),
  );
  coll.chain().find({ visible: { $lte: 0 } }); // builds the indices once
  return coll;
}

/** Visible-by-`at` messages of queue `a`, in visibility order, by a plain scan (no index involved). */
function scan(coll: Collection, at: number): number[] {
  return coll.data
    .filter((d) => d.queueName === 'a' && d.visible <= at)
    .map((d) => d.visible)
    .sort((x, y) => x - y);
}

function found(coll: Collection, at: number): number[] {
  return coll
    .chain()
    .find({ queueName: 'a', visible: { $lte: at } })
    .simplesort('visible')
    .data()
    .map((d) => d.visible);
}

describe('LokiJS batch fix for Azurite', () => {
  it('removing an empty batch removes nothing and keeps the indices', () => {
    const coll = messages(500);
    const indices = { ...coll.binaryIndices };
    coll.remove([]);
    expect(coll.data).toHaveLength(500);
    expect(coll.binaryIndices.visible).toBe(indices.visible);
    expect(coll.binaryIndices.queueName).toBe(indices.queueName);
  });

  it.each<[string, (coll: Collection, doc: Doc) => void]>([
    ['removing an array of one document', (coll, doc) => coll.remove([doc])],
    [
      "finding and removing one document (as Azurite's garbage collector does)",
      (coll, doc) => coll.findAndRemove({ $loki: doc.$loki }),
    ],
  ])('%s removes it and moves only its index entries', (_, removeOne) => {
    const coll = messages(500);
    const indices = { ...coll.binaryIndices };
    const doc = coll.data.find((d) => d.queueName === 'a' && d.visible > 500) as Doc;
    removeOne(coll, doc);
    expect(coll.data).toHaveLength(499);
    expect(coll.data).not.toContain(doc);
    expect(coll.binaryIndices.visible).toBe(indices.visible);
    expect(found(coll, 999)).toEqual(scan(coll, 999));
  });

  it('removing a longer array still removes it and finds stay right', () => {
    const coll = messages(500);
    coll.remove(coll.data.filter((d) => d.visible < 100));
    expect(coll.data.every((d) => d.visible >= 100)).toBe(true);
    expect(found(coll, 400)).toEqual(scan(coll, 400));
  });

  it('a batch update of documents changed in place still leaves finds right', () => {
    const coll = messages(500);
    const batch = coll.data.filter((d) => d.queueName === 'a').slice(0, 32);
    for (const doc of batch) doc.visible += 5000; // as Azurite's receive does
    coll.update(batch);
    for (const at of [0, 250, 999, 5500, 10_000]) expect(found(coll, at)).toEqual(scan(coll, at));
  });

  it('a single update and remove behave as before', () => {
    const coll = messages(50);
    const doc = coll.data[3];
    doc.visible = -1;
    coll.update(doc);
    expect(found(coll, -1)).toEqual([-1]); // document 3 is in queue a
    coll.remove(doc);
    expect(coll.data).toHaveLength(49);
  });
});
