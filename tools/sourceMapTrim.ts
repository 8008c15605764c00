/**
 * The bundle's source map with the dependencies' mappings cut to one per source line. Node keeps a parsed map in the
 * heap for the life of the process once any stack trace was formatted with source maps on (the worker formats one
 * at start-up), one array per mapping: the whole bundle's map was 430,000 mappings, 44 MB of heap that every full
 * garbage collection then marks, and 200 ms of parsing. The gateway's own sources keep every mapping (exact line and
 * column in its stack traces); a frame inside a dependency still names the right file and line, its column being
 * that of the line's first mapping.
 */
import { decode, encode, type SourceMapSegment } from '@jridgewell/sourcemap-codec';

/** A version 3 source map, as esbuild writes it. */
export interface SourceMapV3 {
  version: 3;
  sources: string[];
  names: string[];
  mappings: string;
  [field: string]: unknown;
}

/** What {@link trimDependencyMappings} did. */
export interface TrimmedSourceMap {
  map: SourceMapV3;
  /** Mappings (segments with a source) before and after. */
  mappingsBefore: number;
  mappingsAfter: number;
}

/**
 * `map` with every mapping into a source `isOwn` rejects dropped when the mapping kept before it on the same
 * generated line points at the same source line; names are dropped from those that remain. Mappings into own sources
 * and segments without a source are kept as they are.
 */
export function trimDependencyMappings(map: SourceMapV3, isOwn: (source: string) => boolean): TrimmedSourceMap {
  const own = map.sources.map((source) => isOwn(source));
  let mappingsBefore = 0;
  let mappingsAfter = 0;
  const lines = decode(map.mappings).map((segments) => {
    const kept: SourceMapSegment[] = [];
    let last: SourceMapSegment | undefined;
    for (const segment of segments) {
      if (segment.length === 1) {
        kept.push(segment);
        last = undefined;
        continue;
      }
      mappingsBefore++;
      const [column, source, line, sourceColumn] = segment;
      if (own[source]) {
        kept.push(segment);
      } else if (!last || last.length === 1 || last[1] !== source || last[2] !== line) {
        kept.push([column, source, line, sourceColumn]);
      } else {
        continue;
      }
      last = kept[kept.length - 1];
      mappingsAfter++;
    }
    return kept;
  });
  return { map: { ...map, mappings: encode(lines) }, mappingsBefore, mappingsAfter };
}
