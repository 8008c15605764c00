/**
 * Runs one function invocation the way the Node.js worker does: a real `InvocationContext` from the app's own
 * `@azure/functions` instance, preInvocation hooks (which may swap inputs or the handler), the handler, then
 * postInvocation hooks (which may replace the result or the error), with the context's logs routed to the host logger.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { format, inspect } from 'node:util';
import type * as AzureFunctions from '@azure/functions';
import type { CoreHookCallback, DisposableLike } from './coreShim';
import type { CoreInvocationContext, CoreInvocationModel } from './httpStreaming';
import type { FunctionEntry } from './registry';

/** Log levels, as `@azure/functions` names them. */
export type HostLogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical';

/** Receives every host, system and function log line. */
export type HostLogger = (level: HostLogLevel, message: string) => void;

/** The `@azure/functions` module as loaded from the app's own dependencies. */
export type FunctionsLibrary = typeof AzureFunctions;

/** Hook callbacks registered through `app.hook.*`, by hook name. */
export class HookRegistry {
  readonly #hooks = new Map<string, CoreHookCallback[]>();

  /** Adds a hook; unknown names throw a RangeError, as the worker does. */
  add(hookName: string, callback: CoreHookCallback): DisposableLike {
    if (!['preInvocation', 'postInvocation', 'appStart', 'appTerminate', 'log'].includes(hookName)) {
      throw new RangeError(`Unrecognized hook "${hookName}"`);
    }
    const list = this.#hooks.get(hookName) ?? [];
    list.push(callback);
    this.#hooks.set(hookName, list);
    return {
      dispose: () => {
        const current = this.#hooks.get(hookName) ?? [];
        this.#hooks.set(
          hookName,
          current.filter((c) => c !== callback),
        );
      },
    };
  }

  /** A snapshot, so hooks disposing themselves mid-run do not disturb iteration. */
  get(hookName: string): CoreHookCallback[] {
    return [...(this.#hooks.get(hookName) ?? [])];
  }
}

/** The outcome of a successful invocation. */
export interface InvocationOutcome {
  result: unknown;
  context: AzureFunctions.InvocationContext;
}

/** Writes non-HTTP outputs (queue messages) after the handler succeeded. */
export type OutputWriter = (
  entry: FunctionEntry,
  context: AzureFunctions.InvocationContext,
  result: unknown,
) => Promise<void>;

/** Dependencies of an `Invoker`. */
export interface InvokerOptions {
  library: FunctionsLibrary;
  hooks: HookRegistry;
  appHookData: Record<string, unknown>;
  logger: HostLogger;
  writeOutputs: OutputWriter;
}

/** Invokes registered handlers. */
export class Invoker {
  readonly #options: InvokerOptions;

  constructor(options: InvokerOptions) {
    this.#options = options;
  }

  /**
   * Invokes `entry` with its trigger input. Resolves with the (hook-adjusted) result; rejects with the handler's
   * error after logging it, so each trigger decides what failure means (500, retry, nothing).
   */
  async invoke(
    entry: FunctionEntry,
    input: unknown,
    triggerMetadata: Record<string, unknown> | undefined,
    reason: string,
  ): Promise<InvocationOutcome> {
    const { library } = this.#options;
    const name = entry.info.name;
    const invocationId = randomUUID();
    const context = new library.InvocationContext({
      invocationId,
      functionName: name,
      logHandler: (level, ...args) => this.#userLog(name, context, level, format(...args)),
      triggerMetadata,
      options: entry.options,
    });
    return this.#run(entry, invocationId, reason, () =>
      Promise.resolve({
        context,
        inputs: [input],
        call: (handler: (...args: unknown[]) => unknown, inputs: unknown[]): unknown =>
          Reflect.apply(handler, undefined, [...inputs, context]),
      }),
    );
  }

  /**
   * Invokes an HTTP function whose request streams through the worker's proxy: as the Node.js worker does, the app's
   * own invocation model builds the arguments (it waits for the forwarded request), calls the handler, and turns the
   * result into the response it writes on the proxied exchange. Resolves once that response is handed over.
   */
  async invokeStreamed(
    entry: FunctionEntry,
    invocationId: string,
    model: (log: CoreInvocationContext['log']) => CoreInvocationModel,
    reason: string,
  ): Promise<InvocationOutcome> {
    const name = entry.info.name;
    let context: AzureFunctions.InvocationContext | undefined;
    const invocation = model((level, category, message) => {
      if (category === 'user' && context) this.#userLog(name, context, level, message);
      else this.#options.logger(toHostLevel(level), `[${name}] ${message}`);
    });
    return this.#run(entry, invocationId, reason, async () => {
      const args = await invocation.getArguments();
      context = args.context as AzureFunctions.InvocationContext;
      return {
        context,
        inputs: args.inputs,
        call: (handler, inputs) => invocation.invokeFunction(context, inputs, handler),
        respond: async (result) => {
          await invocation.getResponse(context, result);
        },
      };
    });
  }

  async #run(
    entry: FunctionEntry,
    invocationId: string,
    reason: string,
    prepare: () => Promise<{
      context: AzureFunctions.InvocationContext;
      inputs: unknown[];
      call: (handler: (...args: unknown[]) => unknown, inputs: unknown[]) => unknown;
      respond?: (result: unknown) => Promise<void>;
    }>,
  ): Promise<InvocationOutcome> {
    const { hooks, appHookData, logger } = this.#options;
    const name = entry.info.name;
    logger('debug', `Executing 'Functions.${name}' (Reason='${reason}', Id=${invocationId})`);
    const started = performance.now();
    const hookData: Record<string, unknown> = {};
    let outcome: { result: unknown; error: unknown; context?: AzureFunctions.InvocationContext };
    try {
      const { context, inputs, call, respond } = await prepare();
      const pre: Record<string, unknown> = {
        hookData,
        appHookData,
        invocationContext: context,
        inputs,
        functionCallback: entry.callback,
      };
      for (const hook of hooks.get('preInvocation')) await hook(pre);

      let result: unknown;
      let error: unknown;
      try {
        const handler = pre.functionCallback;
        if (typeof handler !== 'function')
          throw new TypeError('preInvocation hook replaced the handler with a non-function');
        result = await call(handler as (...args: unknown[]) => unknown, Array.isArray(pre.inputs) ? pre.inputs : []);
      } catch (err) {
        error = err;
      }

      const post: Record<string, unknown> = {
        hookData,
        appHookData,
        invocationContext: context,
        inputs: pre.inputs,
        result,
        error,
      };
      for (const hook of hooks.get('postInvocation')) await hook(post);
      outcome = { result: post.result, error: post.error, context };
      // Same truthiness test as the worker: a hook clearing `error` turns the invocation into a success.
      if (!outcome.error) {
        await this.#options.writeOutputs(entry, context, outcome.result);
        await respond?.(outcome.result);
      }
    } catch (err) {
      outcome = { result: undefined, error: err ?? new Error('Invocation failed') };
    }

    const duration = Math.round(performance.now() - started);
    if (outcome.error || !outcome.context) {
      logger('error', `[${name}] ${describeError(outcome.error)}`);
      logger('error', `Executed 'Functions.${name}' (Failed, Id=${invocationId}, Duration=${duration}ms)`);
      throw outcome.error;
    }
    logger('information', `Executed 'Functions.${name}' (Succeeded, Id=${invocationId}, Duration=${duration}ms)`);
    return { result: outcome.result, context: outcome.context };
  }

  /** Runs `log` hooks (which may rewrite level and message), then writes the line tagged with the function name. */
  #userLog(name: string, context: AzureFunctions.InvocationContext, level: string, message: string): void {
    const { hooks, appHookData, logger } = this.#options;
    const logContext: Record<string, unknown> = {
      hookData: {},
      appHookData,
      level,
      message,
      category: 'user',
      invocationContext: context,
    };
    const hookFailed = (err: unknown): void => logger('warning', `[${name}] log hook failed: ${describeError(err)}`);
    for (const hook of hooks.get('log')) {
      try {
        // Log hooks are synchronous by contract; a returned promise is only watched for rejection.
        Promise.resolve(hook(logContext)).catch(hookFailed);
      } catch (err) {
        hookFailed(err);
      }
    }
    logger(toHostLevel(logContext.level), `[${name}] ${String(logContext.message)}`);
  }
}

/** Maps any level name (library or worker spelling) onto the host's levels. */
export function toHostLevel(level: unknown): HostLogLevel {
  switch (typeof level === 'string' ? level.toLowerCase() : '') {
    case 'trace':
      return 'trace';
    case 'debug':
      return 'debug';
    case 'warning':
    case 'warn':
      return 'warning';
    case 'error':
      return 'error';
    case 'critical':
      return 'critical';
    default:
      return 'information';
  }
}

/**
 * A stack (or message) for any thrown value. App code runs in Node's main realm while the host may run inside a
 * test sandbox, so `instanceof Error` is not reliable here.
 */
export function describeError(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const { stack, message } = err as { stack?: unknown; message?: unknown };
    if (typeof stack === 'string' && stack !== '') return stack;
    if (typeof message === 'string') return message;
  }
  return typeof err === 'string' ? err : inspect(err);
}
