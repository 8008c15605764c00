/**
 * A local stand-in for the Azure Functions host: loads the app's compiled function files with the
 * `@azure/functions-core` shim in place, then serves the captured registrations over HTTP, on timers and from
 * storage queues. `npm start` uses it so the product runs without Azure Functions Core Tools.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Timer } from '@azure/functions';
import {
  installFunctionsCoreShim,
  nodeModuleLoader,
  type CoreProgrammingModel,
  type FunctionsCoreShim,
  type RegistrationSink,
} from './coreShim';
import { HttpDispatcher } from './httpDispatcher';
import {
  negotiateHttpStreaming,
  streamingInvocationModel,
  type CoreInvocationContext,
  type CoreInvocationModel,
} from './httpStreaming';
import {
  describeError,
  HookRegistry,
  Invoker,
  toHostLevel,
  type FunctionsLibrary,
  type HostLogger,
  type HostLogLevel,
  type InvocationOutcome,
} from './invoker';
import {
  findFunctionFiles,
  findProjectRoot,
  readHostSettings,
  readMainPattern,
  type HostSettings,
} from './projectConfig';
import { QueueListener, QueueStorage, queueTriggerInput, writeQueueOutputs } from './queues';
import { buildRegistry, type CapturedRegistration, type FunctionEntry, type RegisteredFunction } from './registry';
import { timerInput, TimerScheduler } from './timers';

/** Options for `LocalFunctionsHost.start`. */
export interface LocalHostOptions {
  /** Folder holding the app's package.json (whose `main` globs the compiled function files) and host.json. */
  projectRoot: string;
  /** Port on 127.0.0.1; default 7071, 0 picks a free one (see `url`). */
  port?: number;
  /** Host-level function key: accepted by `function`-level HTTP functions. */
  functionKey: string;
  /** Master key: accepted everywhere, required by `admin`-level functions. */
  masterKey: string;
  /** Receives all log lines; defaults to `consoleLogger()`. Never given key values. */
  logger?: HostLogger;
  /** Run timer triggers on their schedules (default true); `runTimer` works either way. */
  enableTimers?: boolean;
  /**
   * Also serve HTTPS on this port (0 picks a free one) with this certificate, as Azure serves every Function App,
   * so that Graph's webhook URLs (https only) can point at the local host.
   */
  https?: { port: number; certPem: string; keyPem: string };
  /** Poll queues for queue triggers (default true). */
  enableQueues?: boolean;
  /** Largest accepted request body; default 100 MB, Azure's limit. Larger requests get 413. */
  maxRequestBodyBytes?: number;
  /**
   * App settings: exported into the functions' process environment before they load (as the Functions host gives
   * a worker its app settings) and used for `%NAME%` expressions and connection strings; default `process.env`.
   */
  appSettings?: NodeJS.ProcessEnv;
  /** First back-off step when a queue is empty; default 100 ms. */
  minQueuePollIntervalMs?: number;
  /** Back-off ceiling when a queue stays empty; default 2 s. */
  maxQueuePollIntervalMs?: number;
}

const DEFAULT_PORT = 7071;
const DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024;
const LEVEL_ORDER: readonly HostLogLevel[] = ['trace', 'debug', 'information', 'warning', 'error', 'critical'];

/** A logger writing `HH:MM:SS.mmm message` lines to stdout (warnings and errors to stderr) from `minLevel` up. */
export function consoleLogger(minLevel: HostLogLevel = 'information'): HostLogger {
  const threshold = LEVEL_ORDER.indexOf(minLevel);
  return (level, message) => {
    if (LEVEL_ORDER.indexOf(level) < threshold) return;
    const line = `${new Date().toISOString().slice(11, 23)} ${message}`;
    if (level === 'warning' || level === 'error' || level === 'critical') console.error(line);
    else console.log(line);
  };
}

/** One console line per function, e.g. `GET,POST http://127.0.0.1:7071/api/health [anonymous]`. */
export function describeRegisteredFunction(fn: RegisteredFunction, baseUrl: string, routePrefix: string): string {
  switch (fn.triggerType) {
    case 'http': {
      const routePath = [routePrefix, fn.route].filter((s) => s !== '').join('/');
      return `${fn.methods?.join(',') ?? 'ANY'} ${baseUrl}/${routePath} [${fn.authLevel}]`;
    }
    case 'timer':
      return `${fn.name}: timerTrigger "${fn.schedule}"${fn.runOnStartup ? ' (runOnStartup)' : ''}`;
    case 'queue':
      return `${fn.name}: queueTrigger "${fn.queueName}" (${fn.connection})`;
  }
}

/** A running local Functions host. */
export class LocalFunctionsHost {
  /** Origin of the HTTP server, e.g. `http://127.0.0.1:7071`. */
  readonly url: string;
  /** Origin of the HTTPS server when one was asked for, e.g. `https://127.0.0.1:7443`. */
  readonly httpsUrl: string | undefined;
  /** Every registered function, as the app registered it. */
  readonly functions: RegisteredFunction[];
  /** The route prefix from host.json (`api` by default). */
  readonly routePrefix: string;

  readonly #entries: FunctionEntry[];
  readonly #servers: Server[];
  readonly #dispatcher: HttpDispatcher;
  readonly #invoker: Invoker;
  readonly #hooks: HookRegistry;
  readonly #appHookData: Record<string, unknown>;
  readonly #shim: FunctionsCoreShim;
  readonly #sink: RegistrationSink;
  readonly #logger: HostLogger;
  readonly #timers: TimerScheduler | undefined;
  readonly #listeners: QueueListener[];
  readonly #inFlight = new Set<Promise<unknown>>();
  #stopped: Promise<void> | undefined;

  private constructor(parts: {
    url: string;
    httpsUrl: string | undefined;
    settings: HostSettings;
    entries: FunctionEntry[];
    servers: Server[];
    dispatcher: HttpDispatcher;
    invoker: Invoker;
    hooks: HookRegistry;
    appHookData: Record<string, unknown>;
    shim: FunctionsCoreShim;
    sink: RegistrationSink;
    logger: HostLogger;
    timers: TimerScheduler | undefined;
    listeners: QueueListener[];
  }) {
    this.url = parts.url;
    this.httpsUrl = parts.httpsUrl;
    this.routePrefix = parts.settings.routePrefix;
    this.functions = parts.entries.map((e) => e.info);
    this.#entries = parts.entries;
    this.#servers = parts.servers;
    this.#dispatcher = parts.dispatcher;
    this.#invoker = parts.invoker;
    this.#hooks = parts.hooks;
    this.#appHookData = parts.appHookData;
    this.#shim = parts.shim;
    this.#sink = parts.sink;
    this.#logger = parts.logger;
    this.#timers = parts.timers;
    this.#listeners = parts.listeners;
  }

  /**
   * Loads the app and starts serving it. Rejects (leaving nothing running) when the project cannot be loaded, a
   * binding cannot be resolved (e.g. an unset `%SETTING%`) or emulated, or the port is taken.
   */
  static async start(options: LocalHostOptions): Promise<LocalFunctionsHost> {
    if (!options.functionKey || !options.masterKey) throw new Error('functionKey and masterKey must be non-empty');
    const logger = options.logger ?? consoleLogger();
    const env = options.appSettings ?? process.env;
    const projectRoot = path.resolve(options.projectRoot);
    const settings = readHostSettings(projectRoot);
    const mainPattern = readMainPattern(projectRoot);
    const files = findFunctionFiles(projectRoot, mainPattern);
    if (files.length === 0) {
      throw new Error(`No files match "main": "${mainPattern}" under ${projectRoot} (has the app been built?)`);
    }

    // The shim must be in place before the app's @azure/functions first registers anything: the library resolves
    // the core module once and remembers a failure as "test mode" for the life of the process.
    const shim = installFunctionsCoreShim();
    const projectRequire = nodeModuleLoader().createRequire(path.join(projectRoot, 'package.json'));
    if (options.appSettings) {
      // The app's modules see Node's own process object, which a test runner's sandboxed `process` may not be.
      Object.assign((projectRequire('node:process') as NodeJS.Process).env, options.appSettings);
    }
    const { library, version: libraryVersion } = loadFunctionsLibrary(projectRequire);

    const hooks = new HookRegistry();
    const captured: CapturedRegistration[] = [];
    let currentFile = '';
    const sink: RegistrationSink = {
      registerFunction: (metadata, callback) => captured.push({ metadata, callback, file: currentFile }),
      registerHook: (hookName, callback) => hooks.add(hookName, callback),
      log: (level, _category, message) => logger(toHostLevel(level), `[functions] ${message}`),
    };
    shim.withSink(sink, () => {
      for (const file of files) {
        currentFile = path.relative(projectRoot, file);
        // Re-evaluating the file is what registers its functions, so a second host in one process must not get
        // the cached module.
        delete projectRequire.cache[projectRequire.resolve(file)];
        try {
          projectRequire(file);
        } catch (err) {
          throw new Error(`Loading ${currentFile} failed: ${describeError(err)}`, { cause: err });
        }
      }
    });
    if (captured.length === 0) {
      throw new Error(
        shim.requested
          ? `The files matching "${mainPattern}" registered no functions`
          : '@azure/functions never asked for @azure/functions-core: it was loaded and used in test mode before the ' +
              'local host installed its shim',
      );
    }
    const programmingModel = shim.programmingModel;
    checkLibraryVersion(libraryVersion, programmingModel);
    const entries = buildRegistry(captured, env);
    // As the worker does once the app is loaded: this also locks `app.setup`, and starts the library's HTTP proxy
    // when the app enabled streaming.
    const proxyUri = await negotiateHttpStreaming(programmingModel);
    if (proxyUri) logger('debug', `HTTP streaming enabled: the worker's proxy listens on ${proxyUri}`);

    const appHookData: Record<string, unknown> = {};
    const storage = new QueueStorage(env);
    const invoker = new Invoker({
      library,
      hooks,
      appHookData,
      logger,
      writeOutputs: (entry, context, result) =>
        writeQueueOutputs(storage, settings.queues.messageEncoding, entry, context, result),
    });

    // Late-bound so the dispatcher and schedulers can call into the host object created below.
    let host: LocalFunctionsHost | undefined;
    const invoke = (entry: FunctionEntry, input: unknown, meta: Record<string, unknown> | undefined, why: string) => {
      if (!host) return Promise.reject(new Error('The local Functions host is not running'));
      return host.#invoke(entry, input, meta, why);
    };

    const server = createServer();
    const servers: Server[] = [server];
    const tlsServer = options.https
      ? createTlsServer({ cert: options.https.certPem, key: options.https.keyPem })
      : undefined;
    if (tlsServer) servers.push(tlsServer);
    const dispatcher = new HttpDispatcher({
      library,
      entries,
      routePrefix: settings.routePrefix,
      functionKey: options.functionKey,
      masterKey: options.masterKey,
      maxRequestBodyBytes: options.maxRequestBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      fallbackOrigin: () => host?.url ?? 'http://127.0.0.1',
      invoke: (entry, request) =>
        invoke(entry, request, undefined, 'This function was programmatically called via the host APIs.'),
      runNonHttp: (name, input) => (host ? host.#runNonHttp(name, input) : false),
      logger,
      ...(proxyUri
        ? {
            streaming: {
              proxyUri,
              invoke: (entry, invocationId, triggerMetadata) => {
                if (!host) return Promise.reject(new Error('The local Functions host is not running'));
                return host.#invokeStreamed(entry, invocationId, (log) =>
                  streamingInvocationModel(programmingModel, {
                    invocationId,
                    request: { inputData: [{ name: entry.options.trigger.name, data: {} }], triggerMetadata },
                    metadata: { name: entry.info.name, bindings: { ...entry.info.bindings } },
                    state: undefined,
                    log,
                  }),
                );
              },
            },
          }
        : {}),
    });

    const timers =
      options.enableTimers === false
        ? undefined
        : new TimerScheduler(
            entries,
            (entry, timer) =>
              invoke(entry, timer, undefined, `Timer fired at ${new Date().toISOString()}`).then(() => undefined),
            logger,
          );

    const listeners: QueueListener[] = [];
    if (options.enableQueues !== false) {
      for (const entry of entries) {
        if (entry.info.triggerType !== 'queue') continue;
        const { queueName, connection } = entry.info;
        // Resolving the client now turns a missing connection setting into a startup error.
        storage.queue(connection, queueName);
        listeners.push(
          new QueueListener({
            entry,
            queueName,
            connection,
            storage,
            settings: settings.queues,
            invoke: (input, meta) => invoke(entry, input, meta, `New queue message detected on '${queueName}'.`),
            logger,
            minPollIntervalMs: options.minQueuePollIntervalMs ?? 100,
            maxPollIntervalMs: options.maxQueuePollIntervalMs ?? 2000,
          }),
        );
      }
    }

    shim.attach(sink);
    try {
      for (const hook of hooks.get('appStart')) {
        await hook({ hookData: appHookData, appHookData, functionAppDirectory: projectRoot });
      }
      const port = await listen(server, options.port ?? DEFAULT_PORT);
      const httpsPort = tlsServer && options.https ? await listen(tlsServer, options.https.port) : undefined;
      host = new LocalFunctionsHost({
        url: `http://127.0.0.1:${port}`,
        httpsUrl: httpsPort === undefined ? undefined : `https://127.0.0.1:${httpsPort}`,
        settings,
        entries,
        servers,
        dispatcher,
        invoker,
        hooks,
        appHookData,
        shim,
        sink,
        logger,
        timers,
        listeners,
      });
    } catch (err) {
      shim.detach(sink);
      for (const s of servers) s.close();
      throw err;
    }
    const running = host;
    for (const s of servers) {
      s.on('request', (req, res) => {
        const finished = new Promise<void>((resolve) => res.once('close', resolve));
        void running.#track(Promise.all([dispatcher.handle(req, res), finished]));
      });
    }
    timers?.start();
    for (const listener of listeners) listener.start();
    return running;
  }

  /** Console lines describing every function (see `describeRegisteredFunction`). */
  describeFunctions(): string[] {
    return this.functions.map((fn) => describeRegisteredFunction(fn, this.url, this.routePrefix));
  }

  /** Invokes a timer function now (as the portal's "Test/Run" does); rejects with the handler's error. */
  async runTimer(name: string): Promise<void> {
    const entry = this.#find(name);
    if (!entry || entry.info.triggerType !== 'timer') throw new Error(`No timer function named "${name}"`);
    const timer: Timer = timerInput(entry, new Date(), undefined, false);
    await this.#invoke(entry, timer, undefined, 'This function was programmatically called via the host APIs.');
  }

  /** Stops the HTTP server, timers and queue pollers, and waits for running invocations. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  async #shutdown(): Promise<void> {
    this.#dispatcher.beginStop();
    const closed = Promise.all(this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (const s of this.#servers) s.closeIdleConnections();
    await this.#timers?.stop();
    await Promise.all(this.#listeners.map((l) => l.stop()));
    // Settle in-flight work repeatedly: an invocation finishing can still be writing its HTTP response.
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    for (const s of this.#servers) s.closeAllConnections();
    await closed;
    for (const hook of this.#hooks.get('appTerminate')) {
      try {
        await hook({ hookData: this.#appHookData, appHookData: this.#appHookData });
      } catch (err) {
        this.#logger('error', `appTerminate hook failed: ${describeError(err)}`);
      }
    }
    this.#shim.detach(this.#sink);
  }

  #find(name: string): FunctionEntry | undefined {
    return this.#entries.find((e) => e.info.name.toLowerCase() === name.toLowerCase());
  }

  #invoke(
    entry: FunctionEntry,
    input: unknown,
    meta: Record<string, unknown> | undefined,
    reason: string,
  ): Promise<InvocationOutcome> {
    if (this.#stopped) return Promise.reject(new Error('The local Functions host is stopping'));
    return this.#track(this.#invoker.invoke(entry, input, meta, reason));
  }

  #invokeStreamed(
    entry: FunctionEntry,
    invocationId: string,
    model: (log: CoreInvocationContext['log']) => CoreInvocationModel,
  ): Promise<InvocationOutcome> {
    if (this.#stopped) return Promise.reject(new Error('The local Functions host is stopping'));
    const reason = 'This function was programmatically called via the host APIs.';
    return this.#track(this.#invoker.invokeStreamed(entry, invocationId, model, reason));
  }

  #runNonHttp(name: string, input: string | undefined): boolean {
    const entry = this.#find(name);
    if (!entry || entry.info.triggerType === 'http') return false;
    const reason = 'This function was programmatically called via the host APIs.';
    const run =
      entry.info.triggerType === 'timer'
        ? this.runTimer(entry.info.name)
        : this.#invoke(entry, queueTriggerInput(input ?? ''), { queueTrigger: input ?? '', dequeueCount: 1 }, reason);
    // The admin API answers 202 before the function runs; failures are logged by the invoker.
    run.catch(() => undefined);
    return true;
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight.add(promise);
    const untrack = (): void => {
      this.#inFlight.delete(promise);
    };
    promise.then(untrack, untrack);
    return promise;
  }
}

/**
 * The `@azure/functions` whose `HttpRequest`, `HttpResponse` and `InvocationContext` the host builds invocations
 * with, and its version: the app's own copy when it has one in node_modules, else (a bundle that carries the library
 * inside it) the host's, which `checkLibraryVersion` holds to the bundled version.
 */
function loadFunctionsLibrary(projectRequire: NodeJS.Require): { library: FunctionsLibrary; version: string } {
  let load = projectRequire;
  try {
    load.resolve('@azure/functions');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    load = nodeModuleLoader().createRequire(__filename);
  }
  const file = load.resolve('@azure/functions');
  const pkg = JSON.parse(readFileSync(path.join(findProjectRoot(path.dirname(file)), 'package.json'), 'utf8')) as {
    version?: unknown;
  };
  return { library: load(file) as FunctionsLibrary, version: typeof pkg.version === 'string' ? pkg.version : '' };
}

/** Refuses to serve an app whose registered programming model is another version than the library the host uses. */
function checkLibraryVersion(hostVersion: string, model: CoreProgrammingModel | undefined): void {
  const appVersion = model?.version;
  if (typeof appVersion === 'string' && hostVersion !== '' && appVersion !== hostVersion) {
    throw new Error(
      `The app registered its functions with @azure/functions ${appVersion}, but the local host found ` +
        `${hostVersion}: the bundle and node_modules must hold the same version (run npm ci, then rebuild)`,
    );
  }
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(err.code === 'EADDRINUSE' ? new Error(`Port ${port} on 127.0.0.1 is already in use`) : err);
    };
    server.once('error', onError);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
