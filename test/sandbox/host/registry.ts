/**
 * Turns the registrations `@azure/functions` hands to the worker into the local host's routing table, timer list and
 * queue listeners. Nothing here is configured separately: routes, methods, auth levels, schedules and queue names all
 * come from the registered metadata, so the sandbox cannot drift from what the Functions host would serve.
 */
import type { CoreBindingInfo, CoreFunctionCallback, CoreFunctionMetadata } from './coreShim';
import { parseNcrontab, type NcrontabSchedule } from './ncrontab';
import { resolveAppSettings } from './projectConfig';
import { compileRoute, type CompiledRoute } from './routes';

/** Authorization levels of HTTP triggers. */
export type AuthLevel = 'anonymous' | 'function' | 'admin';

/** Fields every registered function has. */
export interface RegisteredFunctionBase {
  /** The name given to `app.http(...)`, `app.timer(...)`, ... */
  readonly name: string;
  /** The bindings exactly as registered (binding name to binding info). */
  readonly bindings: Readonly<Record<string, Readonly<CoreBindingInfo>>>;
}

/** An HTTP-triggered function. */
export interface HttpRegisteredFunction extends RegisteredFunctionBase {
  readonly triggerType: 'http';
  /** The route template without the route prefix (defaults to the function name). */
  readonly route: string;
  /** Allowed methods in upper case; undefined when the trigger accepts every method. */
  readonly methods: readonly string[] | undefined;
  readonly authLevel: AuthLevel;
}

/** A timer-triggered function. */
export interface TimerRegisteredFunction extends RegisteredFunctionBase {
  readonly triggerType: 'timer';
  /** The NCRONTAB schedule after `%SETTING%` resolution. */
  readonly schedule: string;
  /** The schedule as registered (possibly `%SETTING%`). */
  readonly scheduleTemplate: string;
  readonly runOnStartup: boolean;
}

/** A storage-queue-triggered function. */
export interface QueueRegisteredFunction extends RegisteredFunctionBase {
  readonly triggerType: 'queue';
  /** The queue name after `%SETTING%` resolution, lower-cased as the Storage extension does. */
  readonly queueName: string;
  /** The app setting holding the storage connection string. */
  readonly connection: string;
}

/** One function the loaded app registered. */
export type RegisteredFunction = HttpRegisteredFunction | TimerRegisteredFunction | QueueRegisteredFunction;

/** A queue output binding (`output.storageQueue`) to write after a successful invocation. */
export interface QueueOutputBinding {
  readonly bindingName: string;
  readonly queueName: string;
  readonly connection: string;
}

/** Effective options handed to `InvocationContext` (mirrors what the library derives from the bindings). */
export interface EffectiveOptions {
  trigger: { type: string; name: string; [key: string]: unknown };
  return?: { type: string; name: string; [key: string]: unknown };
  extraInputs: { type: string; name: string; [key: string]: unknown }[];
  extraOutputs: { type: string; name: string; [key: string]: unknown }[];
}

/** Everything the host needs to invoke one function. */
export interface FunctionEntry {
  readonly info: RegisteredFunction;
  readonly callback: CoreFunctionCallback;
  readonly options: EffectiveOptions;
  /** For HTTP functions: the binding whose value is the response (`$return` or an extra `http` output). */
  readonly httpOutputBinding: string | undefined;
  readonly queueOutputs: readonly QueueOutputBinding[];
  /** Set for HTTP functions. */
  readonly route: CompiledRoute | undefined;
  /** Set for timer functions. */
  readonly schedule: NcrontabSchedule | undefined;
}

/** A registration as captured from `registerFunction`. */
export interface CapturedRegistration {
  readonly metadata: CoreFunctionMetadata;
  readonly callback: CoreFunctionCallback;
  /** The file whose loading registered it, for error messages. */
  readonly file: string;
}

/** The binding name `@azure/functions` uses for the return value. */
export const RETURN_BINDING = '$return';

const DEFAULT_STORAGE_CONNECTION = 'AzureWebJobsStorage';

/**
 * Validates registrations and resolves app-setting expressions. Throws on anything the real host would reject at
 * startup (duplicate names, unresolvable `%SETTING%`, bad schedules) and on bindings this host cannot emulate, so
 * an unsupported binding fails loudly instead of being silently skipped.
 */
export function buildRegistry(registrations: readonly CapturedRegistration[], env: NodeJS.ProcessEnv): FunctionEntry[] {
  const seen = new Set<string>();
  return registrations.map(({ metadata, callback, file }) => {
    const lowerName = metadata.name.toLowerCase();
    if (seen.has(lowerName)) throw new Error(`Function "${metadata.name}" is registered more than once (${file})`);
    seen.add(lowerName);
    return buildEntry(metadata, callback, env);
  });
}

function buildEntry(
  metadata: CoreFunctionMetadata,
  callback: CoreFunctionCallback,
  env: NodeJS.ProcessEnv,
): FunctionEntry {
  const name = metadata.name;
  const bindings = metadata.bindings;
  const options: EffectiveOptions = { trigger: { type: '', name: '' }, extraInputs: [], extraOutputs: [] };
  let triggerName: string | undefined;
  for (const [bindingName, binding] of Object.entries(bindings)) {
    const type = binding.type ?? '';
    const effective = { ...binding, type, name: bindingName };
    if (/trigger$/i.test(type)) {
      if (triggerName !== undefined) throw new Error(`Function "${name}" has more than one trigger`);
      triggerName = bindingName;
      options.trigger = effective;
    } else if (bindingName === RETURN_BINDING) {
      options.return = effective;
    } else if (binding.direction === 'in') {
      options.extraInputs.push(effective);
    } else {
      options.extraOutputs.push(effective);
    }
  }
  if (triggerName === undefined) throw new Error(`Function "${name}" has no trigger binding`);
  const trigger = bindings[triggerName];
  const triggerType = (trigger.type ?? '').toLowerCase();

  const input = options.extraInputs[0];
  if (input) {
    throw new Error(`Function "${name}" uses a "${input.type}" input binding, which the local host does not emulate`);
  }
  let httpOutputBinding: string | undefined;
  const queueOutputs: QueueOutputBinding[] = [];
  for (const output of [...(options.return ? [options.return] : []), ...options.extraOutputs]) {
    const type = output.type.toLowerCase();
    if (type === 'http' && triggerType === 'httptrigger') {
      httpOutputBinding ??= output.name;
    } else if (type === 'queue') {
      queueOutputs.push({
        bindingName: output.name,
        queueName: normalizeQueueName(
          resolveAppSettings(stringProp(output, 'queueName', name), env, `Function "${name}" queue output`),
          name,
        ),
        connection: connectionProp(output),
      });
    } else {
      throw new Error(
        `Function "${name}" uses a "${output.type}" output binding, which the local host does not emulate`,
      );
    }
  }

  const base = { name, bindings };
  const common = { callback, options, httpOutputBinding, queueOutputs };
  switch (triggerType) {
    case 'httptrigger': {
      const routeTemplate = typeof trigger.route === 'string' && trigger.route.trim() !== '' ? trigger.route : name;
      const route = compileRoute(routeTemplate);
      const methods = Array.isArray(trigger.methods)
        ? trigger.methods.filter((m): m is string => typeof m === 'string').map((m) => m.toUpperCase())
        : [];
      const info: HttpRegisteredFunction = {
        ...base,
        triggerType: 'http',
        route: route.template,
        methods: methods.length > 0 ? methods : undefined,
        authLevel: parseAuthLevel(trigger.authLevel, name),
      };
      return { ...common, info, route, schedule: undefined };
    }
    case 'timertrigger': {
      const scheduleTemplate = stringProp(trigger, 'schedule', name);
      const schedule = resolveAppSettings(scheduleTemplate, env, `Function "${name}" schedule`);
      const info: TimerRegisteredFunction = {
        ...base,
        triggerType: 'timer',
        schedule,
        scheduleTemplate,
        runOnStartup: trigger.runOnStartup === true,
      };
      let parsed: NcrontabSchedule;
      try {
        parsed = parseNcrontab(schedule);
      } catch (err) {
        throw new Error(`Function "${name}": ${err instanceof Error ? err.message : String(err)}`);
      }
      return { ...common, info, route: undefined, schedule: parsed };
    }
    case 'queuetrigger': {
      const queueName = normalizeQueueName(
        resolveAppSettings(stringProp(trigger, 'queueName', name), env, `Function "${name}" queue trigger`),
        name,
      );
      const info: QueueRegisteredFunction = {
        ...base,
        triggerType: 'queue',
        queueName,
        connection: connectionProp(trigger),
      };
      return { ...common, info, route: undefined, schedule: undefined };
    }
    default:
      throw new Error(`Function "${name}" uses a "${trigger.type}" trigger, which the local host does not emulate`);
  }
}

function parseAuthLevel(value: unknown, name: string): AuthLevel {
  const level = typeof value === 'string' ? value.toLowerCase() : 'anonymous';
  if (level === 'anonymous' || level === 'function' || level === 'admin') return level;
  throw new Error(`Function "${name}" has unsupported authLevel "${String(value)}"`);
}

function stringProp(binding: Readonly<CoreBindingInfo>, prop: string, name: string): string {
  const value = binding[prop];
  if (typeof value !== 'string' || value.trim() === '') {
    throw new Error(
      `Function "${name}": its ${typeof binding.type === 'string' ? binding.type : ''} binding has no ${prop}`,
    );
  }
  return value.trim();
}

function connectionProp(binding: Readonly<CoreBindingInfo>): string {
  const value = binding.connection;
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : DEFAULT_STORAGE_CONNECTION;
}

/** Queue names are lower-cased by the Storage extension and must then be valid Azure queue names. */
function normalizeQueueName(queueName: string, name: string): string {
  const lower = queueName.toLowerCase();
  if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(lower)) {
    throw new Error(
      `Function "${name}": "${queueName}" is not a valid queue name (3-63 lowercase letters, digits, single hyphens)`,
    );
  }
  return lower;
}
