/**
 * Stands in for `@azure/functions-core`, the virtual module the Azure Functions Node.js worker injects into the
 * process. `@azure/functions` requires it lazily on the first `app.*` registration; when that require fails the
 * library silently switches to "test mode" and registers nothing. Answering that one request with this shim lets the
 * local host receive registrations exactly as the real worker does.
 */
import NodeModule from 'node:module';

/** The module name the Functions worker injects. */
export const CORE_MODULE_ID = '@azure/functions-core';

/** One binding as `@azure/functions` describes it to the worker (`RpcBindingInfo` plus trigger options). */
export interface CoreBindingInfo {
  type?: string;
  direction?: string | null;
  [property: string]: unknown;
}

/** What `registerFunction` receives: the function name and its bindings keyed by binding name. */
export interface CoreFunctionMetadata {
  name: string;
  functionId?: string;
  bindings: Record<string, CoreBindingInfo>;
  retryOptions?: unknown;
}

/** The handler as registered; the worker calls it with the trigger input(s) followed by the invocation context. */
export type CoreFunctionCallback = (...args: unknown[]) => unknown;

/** A hook callback; it receives a mutable core hook context object. */
export type CoreHookCallback = (context: Record<string, unknown>) => unknown;

/** Something that can be disposed (the worker's `Disposable`). */
export interface DisposableLike {
  dispose(): void;
}

/** The programming model `@azure/functions` registers (name, version, invocation model factory). */
export interface CoreProgrammingModel {
  name?: string;
  version?: string;
  [member: string]: unknown;
}

/** Where registrations go: the host that is currently loading function files. */
export interface RegistrationSink {
  registerFunction(metadata: CoreFunctionMetadata, callback: CoreFunctionCallback): void;
  registerHook(hookName: string, callback: CoreHookCallback): DisposableLike;
  log(level: string, category: string, message: string): void;
}

/** Process-wide shim state, shared by every copy of this module (see `installFunctionsCoreShim`). */
export interface FunctionsCoreShim {
  /** The object `require('@azure/functions-core')` returns. */
  readonly api: object;
  /** The programming model last set by a loaded `@azure/functions` instance. */
  readonly programmingModel: CoreProgrammingModel | undefined;
  /** True once any code required the core module, i.e. the library did not settle into test mode before us. */
  readonly requested: boolean;
  /**
   * Routes registrations to `sink` while `load` runs; registering functions outside such a window throws, as the
   * real worker does after app startup.
   */
  withSink<T>(sink: RegistrationSink, load: () => T): T;
  /** Makes `sink` the target of hooks and system logs raised after loading (the most recently attached wins). */
  attach(sink: RegistrationSink): void;
  /** Undoes `attach`. */
  detach(sink: RegistrationSink): void;
}

/** The parts of Node's CommonJS `Module` class the shim touches. */
interface LoaderModuleClass {
  prototype: { require: (this: unknown, id: string, ...rest: unknown[]) => unknown };
  createRequire(filename: string): NodeJS.Require;
}

interface MutableShimState {
  api: object;
  programmingModel: CoreProgrammingModel | undefined;
  requested: boolean;
  loadingSink: RegistrationSink | undefined;
  attached: RegistrationSink[];
}

const STATE_KEY = Symbol.for('m365-mail-gateway.sandbox.functionsCoreShim');

/**
 * Returns the `Module` class Node itself loads CommonJS files with. Under Jest, `require('node:module')` yields a
 * subclass whose `createRequire` loads through Jest's sandboxed registry, which never consults `Module.prototype`; the
 * real loader is its parent class. Loading app files through the real loader is what the Functions worker does too.
 */
export function nodeModuleLoader(): LoaderModuleClass {
  let cls = NodeModule as unknown as LoaderModuleClass;
  for (;;) {
    const parent: unknown = Object.getPrototypeOf(cls);
    if (typeof parent !== 'function' || !('createRequire' in parent) || !('prototype' in parent)) return cls;
    cls = parent as unknown as LoaderModuleClass;
  }
}

/**
 * Installs the shim once per process and returns its state. The state hangs off the real `Module` class under a
 * registered symbol so that every copy of this file (Jest loads one per test file) shares one patch, and so that an
 * `@azure/functions` instance that cached the shim keeps reaching whichever host is current.
 */
export function installFunctionsCoreShim(): FunctionsCoreShim {
  const loader = nodeModuleLoader();
  const holder = loader as unknown as Record<symbol, FunctionsCoreShim | undefined>;
  const existing = holder[STATE_KEY];
  if (existing) return existing;

  const state: MutableShimState = {
    api: {},
    programmingModel: undefined,
    requested: false,
    loadingSink: undefined,
    attached: [],
  };
  const currentSink = (): RegistrationSink | undefined =>
    state.loadingSink ?? state.attached[state.attached.length - 1];

  class Disposable implements DisposableLike {
    #callOnDispose: (() => unknown) | undefined;
    constructor(callOnDispose: () => unknown) {
      this.#callOnDispose = callOnDispose;
    }
    static from(...likes: DisposableLike[]): Disposable {
      return new Disposable(() => likes.forEach((like) => like.dispose()));
    }
    dispose(): void {
      const call = this.#callOnDispose;
      this.#callOnDispose = undefined;
      call?.();
    }
  }

  state.api = {
    version: '4.0.0-local-sandbox',
    hostVersion: '4.0.0-local-sandbox',
    Disposable,
    registerFunction(metadata: CoreFunctionMetadata, callback: CoreFunctionCallback): DisposableLike {
      const sink = state.loadingSink;
      if (!sink) throw new Error(`A function can only be registered during app startup ("${metadata.name}").`);
      sink.registerFunction(metadata, callback);
      return new Disposable(() => undefined);
    },
    registerHook(hookName: string, callback: CoreHookCallback): DisposableLike {
      const sink = currentSink();
      if (!sink) throw new Error(`Cannot register the "${hookName}" hook: no local Functions host is running.`);
      return sink.registerHook(hookName, callback);
    },
    setProgrammingModel(model: CoreProgrammingModel): void {
      state.programmingModel = model;
    },
    getProgrammingModel(): CoreProgrammingModel | undefined {
      return state.programmingModel;
    },
    log(level: string, category: string, message: string): void {
      const sink = currentSink();
      if (sink) sink.log(level, category, message);
      // Between hosts (tests start several in one process) only what matters goes to the console: the library's
      // HTTP proxy reports its port at debug level whenever it finishes starting.
      else if (!/^(debug|trace)$/i.test(level)) console.log(`[${level}] ${message}`);
    },
  };

  const shim: FunctionsCoreShim = {
    get api() {
      return state.api;
    },
    get programmingModel() {
      return state.programmingModel;
    },
    get requested() {
      return state.requested;
    },
    withSink<T>(sink: RegistrationSink, load: () => T): T {
      if (state.loadingSink) throw new Error('Another local Functions host is loading function files right now.');
      state.loadingSink = sink;
      try {
        return load();
      } finally {
        state.loadingSink = undefined;
      }
    },
    attach(sink: RegistrationSink): void {
      state.attached.push(sink);
    },
    detach(sink: RegistrationSink): void {
      state.attached = state.attached.filter((s) => s !== sink);
    },
  };

  // Only the exact request name is intercepted; every other require takes the original path untouched. Patching the
  // prototype (rather than resolution) covers plain `require`, `module.require` and `createRequire` alike.
  const originalRequire = loader.prototype.require;
  loader.prototype.require = function requireWithFunctionsCore(this: unknown, id: string, ...rest: unknown[]): unknown {
    if (id === CORE_MODULE_ID) {
      state.requested = true;
      return state.api;
    }
    return originalRequire.call(this, id, ...rest);
  };
  holder[STATE_KEY] = shim;
  return shim;
}
