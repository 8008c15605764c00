/** The lines the memory benchmark's probe (`hostMemoryProbe.ts`) prints in the functions host, for the benchmark. */

/** Printed once at start: `memory-probe pid=<pid>`. */
export const PROBE_PID_PREFIX = 'memory-probe pid=';

/** Printed after each SIGUSR2 once memory settled: `memory-probe settled <n>` (n counts from 1). */
export const PROBE_SETTLED_PREFIX = 'memory-probe settled ';
