/**
 * Child process of the package benchmark: `node loadEntryPoints.js <file>...` requires each function entry point
 * with the `@azure/functions-core` shim in place (so registrations run as under the worker) and prints
 * `{"ms": <load time>, "registered": <functions>}`.
 */
import { performance } from 'node:perf_hooks';
import { installFunctionsCoreShim, nodeModuleLoader } from '../sandbox/host/coreShim';

const shim = installFunctionsCoreShim();
const load = nodeModuleLoader().createRequire(__filename);
let registered = 0;
const started = performance.now();
shim.withSink(
  {
    registerFunction: () => void registered++,
    registerHook: () => ({ dispose: () => undefined }),
    log: () => undefined,
  },
  () => {
    for (const file of process.argv.slice(2)) load(file);
  },
);
console.log(JSON.stringify({ ms: performance.now() - started, registered }));
