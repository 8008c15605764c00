/**
 * The package's source map trim (tools/sourceMapTrim.ts): the gateway's own mappings stay exact, a dependency keeps
 * one mapping per source line, and Node's own source map reader finds the same lines through the trimmed map.
 */
import { SourceMap } from 'node:module';
import { decode, encode, type SourceMapSegment } from '@jridgewell/sourcemap-codec';
import { trimDependencyMappings, type SourceMapV3 } from '../../tools/sourceMapTrim';

const OWN = '../shared/own.ts';
const DEP = '../node_modules/dep/index.js';

function mapOf(lines: SourceMapSegment[][]): SourceMapV3 {
  return { version: 3, sources: [OWN, DEP], names: ['fn'], mappings: encode(lines) };
}

describe('trimDependencyMappings', () => {
  // Generated line 0: own code at columns 0-30, then a dependency's line 7 in three pieces and its line 8 in two.
  // Generated line 1: the dependency's line 8 again (a new generated line starts its own run), then own code.
  const lines: SourceMapSegment[][] = [
    [
      [0, 0, 3, 0, 0],
      [10, 0, 3, 8],
      [20, 0, 4, 2],
      [30, 1, 7, 0, 0],
      [35, 1, 7, 5],
      [40, 1, 7, 9, 0],
      [45, 1, 8, 0],
      [50, 1, 8, 4],
      [55],
      [60, 1, 8, 6],
    ],
    [
      [0, 1, 8, 10],
      [5, 1, 8, 12],
      [9, 0, 5, 0],
    ],
  ];
  const { map, mappingsBefore, mappingsAfter } = trimDependencyMappings(mapOf(lines), (s) => s === OWN);
  const trimmed = decode(map.mappings);

  it('keeps every mapping of the own sources, names included', () => {
    expect(trimmed[0].filter((s) => s[1] === 0)).toEqual(lines[0].filter((s) => s[1] === 0));
    expect(trimmed[1].filter((s) => s[1] === 0)).toEqual([[9, 0, 5, 0]]);
  });

  it("keeps a dependency's first mapping of each source line on each generated line, without its name", () => {
    expect(trimmed[0].filter((s) => s[1] === 1)).toEqual([
      [30, 1, 7, 0],
      [45, 1, 8, 0],
      // After a segment without a source the dependency's line starts again.
      [60, 1, 8, 6],
    ]);
    expect(trimmed[1].filter((s) => s[1] === 1)).toEqual([[0, 1, 8, 10]]);
    expect(trimmed[0]).toContainEqual([55]);
    expect([mappingsBefore, mappingsAfter]).toEqual([12, 8]);
  });

  it('answers the same source and line through Node as the full map does, for every generated column', () => {
    const full = new SourceMap(mapOf(lines) as never);
    const cut = new SourceMap(map as never);
    for (const [line, segments] of lines.entries()) {
      for (let column = 0; column <= segments[segments.length - 1][0] + 3; column++) {
        const a = full.findEntry(line, column) as { originalSource?: string; originalLine?: number };
        const b = cut.findEntry(line, column) as { originalSource?: string; originalLine?: number };
        expect([b.originalSource, b.originalLine]).toEqual([a.originalSource, a.originalLine]);
      }
    }
  });
});
