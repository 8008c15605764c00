/**
 * The messages benchmark's arithmetic (test/bench/messagesBench.ts): Graph's part of a `GET` is the time covered by
 * its Graph requests, which overlap, and percentiles are by nearest rank.
 */
import { coveredMs, percentile } from '../bench/messagesBench';

const at = (startedAtMs: number, durationMs: number) => ({ startedAtMs, durationMs });

describe('messages benchmark figures', () => {
  it('counts overlapping Graph requests once and separate ones each', () => {
    expect(coveredMs([])).toBe(0);
    expect(coveredMs([at(100, 2)])).toBe(2);
    // The two requests of one GET, made at once: 1.5 ms covered, not 2.5.
    expect(coveredMs([at(100.5, 1), at(100, 1.5)])).toBeCloseTo(1.5);
    expect(coveredMs([at(100, 1), at(103, 0.5)])).toBeCloseTo(1.5);
    // One request inside another adds nothing.
    expect(coveredMs([at(100, 4), at(101, 1), at(103.5, 1)])).toBeCloseTo(4.5);
  });

  it('takes percentiles by nearest rank', () => {
    const values = Array.from({ length: 300 }, (_, i) => 300 - i);
    expect(percentile(values, 50)).toBe(150);
    expect(percentile(values, 99)).toBe(297);
  });
});
