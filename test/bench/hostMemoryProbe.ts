/**
 * Preloaded into the memory benchmark's functions host (`NODE_OPTIONS=--expose-gc --require <this file>`), so that
 * the host itself stays as it runs in the tests and the sandbox. It announces the process id (the benchmark reads
 * the host's memory from `/proc/<pid>/status`), and on SIGUSR2 collects garbage and prints a line once the freed
 * memory had time to go back to the system: the benchmark's "settled" points (before and after a send) are then
 * comparable from run to run instead of depending on when V8 last collected.
 */
import { PROBE_PID_PREFIX, PROBE_SETTLED_PREFIX } from './hostMemoryProtocol';

// ArrayBuffer backing stores are freed by a sweeper after the collection itself: give it a moment, then collect
// once more so that anything the first collection only promoted is gone too.
const SETTLE_MS = 300;

let settled = 0;

/** Full collection, if the host runs with --expose-gc (the benchmark sets it). */
function collect(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

process.on('SIGUSR2', () => {
  collect();
  setTimeout(() => {
    collect();
    setTimeout(() => {
      settled++;
      process.stdout.write(`${PROBE_SETTLED_PREFIX}${settled}\n`);
    }, SETTLE_MS);
  }, SETTLE_MS);
});

process.stdout.write(`${PROBE_PID_PREFIX}${process.pid}\n`);
