/**
 * Reads what the Functions host reads from the project folder: `package.json` `main` (the function entry points, a
 * glob in the v4 programming model), `host.json` settings, and `%NAME%` app-setting expressions in binding values.
 */
import { type Dirent, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** Storage-queue trigger settings (`extensions.queues` in host.json). */
export interface QueueSettings {
  /** Failed attempts after which a message moves to `{queue}-poison`. */
  maxDequeueCount: number;
  /** Messages fetched per poll. */
  batchSize: number;
  /**
   * A new batch is fetched once the messages in flight are down to this many (the extension's default: half the
   * batch size), so at most `batchSize + newBatchThreshold` run at once.
   */
  newBatchThreshold: number;
  /** How long a message whose invocation failed stays invisible before it is retried. */
  visibilityTimeoutMs: number;
  /** How message text is encoded on the queue; the extension's default is base64. */
  messageEncoding: 'base64' | 'none';
}

/** The host.json settings the local host honours. */
export interface HostSettings {
  /** `extensions.http.routePrefix`; empty means routes hang off the root. */
  routePrefix: string;
  queues: QueueSettings;
}

/** Defaults of the Functions host (Storage extension 5.x) where host.json is silent. */
export const DEFAULT_QUEUE_SETTINGS: Readonly<QueueSettings> = {
  maxDequeueCount: 5,
  batchSize: 16,
  newBatchThreshold: 8,
  visibilityTimeoutMs: 0,
  messageEncoding: 'base64',
};

/** Walks up from `startDir` to the nearest folder holding a package.json. */
export function findProjectRoot(startDir: string): string {
  let dir = path.resolve(startDir);
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`No package.json found in ${startDir} or any parent folder`);
    dir = parent;
  }
}

/** The `main` entry of the project's package.json: a file path or glob relative to the project root. */
export function readMainPattern(projectRoot: string): string {
  const pkg = readJsonObject(path.join(projectRoot, 'package.json'));
  const main = pkg.main;
  if (typeof main !== 'string' || main.trim() === '') {
    throw new Error(`${path.join(projectRoot, 'package.json')} has no "main" naming the function entry points`);
  }
  return main.trim();
}

/**
 * Files under `projectRoot` matching `pattern`, sorted. Supports `*` and `?` within a path segment and `**` for any
 * number of folders, which covers how v4 apps spell `main`; other glob syntax is taken literally.
 */
export function findFunctionFiles(projectRoot: string, pattern: string): string[] {
  const segments = pattern
    .replace(/\\/g, '/')
    .replace(/^\.\//, '')
    .split('/')
    .filter((s) => s !== '' && s !== '.');
  const found = new Set<string>();
  const walk = (dir: string, index: number): void => {
    if (index === segments.length) {
      if (isFile(dir)) found.add(dir);
      return;
    }
    const segment = segments[index];
    if (segment === '**') {
      walk(dir, index + 1);
      for (const entry of listDir(dir)) {
        if (entry.isDirectory() && entry.name !== 'node_modules' && !entry.name.startsWith('.')) {
          walk(path.join(dir, entry.name), index);
        }
      }
    } else if (/[*?]/.test(segment)) {
      const matcher = segmentMatcher(segment);
      for (const entry of listDir(dir)) {
        if (matcher.test(entry.name)) walk(path.join(dir, entry.name), index + 1);
      }
    } else {
      walk(path.join(dir, segment), index + 1);
    }
  };
  walk(path.resolve(projectRoot), 0);
  return [...found].sort();
}

/** Reads host.json (optional) and applies the Functions host defaults. */
export function readHostSettings(projectRoot: string): HostSettings {
  const file = path.join(projectRoot, 'host.json');
  const hostJson = existsSync(file) ? readJsonObject(file) : {};
  // The Functions host treats host.json keys case-insensitively.
  const extensions = objectProp(hostJson, 'extensions');
  const http = objectProp(extensions, 'http');
  const queues = objectProp(extensions, 'queues');

  const routePrefixValue = prop(http, 'routePrefix');
  const routePrefix = typeof routePrefixValue === 'string' ? routePrefixValue.replace(/^\/+|\/+$/g, '') : 'api';

  const encoding = prop(queues, 'messageEncoding');
  const batchSize = intProp(queues, 'batchSize', DEFAULT_QUEUE_SETTINGS.batchSize, 1, 32, file);
  const settings: QueueSettings = {
    maxDequeueCount: intProp(queues, 'maxDequeueCount', DEFAULT_QUEUE_SETTINGS.maxDequeueCount, 1, 10_000, file),
    batchSize,
    newBatchThreshold: intProp(queues, 'newBatchThreshold', Math.floor(batchSize / 2), 0, 1000, file),
    visibilityTimeoutMs: timeSpanProp(queues, 'visibilityTimeout', DEFAULT_QUEUE_SETTINGS.visibilityTimeoutMs, file),
    messageEncoding:
      typeof encoding === 'string' && encoding.toLowerCase() === 'none'
        ? 'none'
        : DEFAULT_QUEUE_SETTINGS.messageEncoding,
  };
  return { routePrefix, queues: settings };
}

/**
 * Replaces every `%NAME%` in a binding value with the app setting NAME (process environment, as the Functions host
 * reads app settings). `%%` is not an escape in the host either, so it is left alone.
 */
export function resolveAppSettings(value: string, env: NodeJS.ProcessEnv, usage: string): string {
  return value.replace(/%([^%\s]+)%/g, (_match, name: string) => {
    const resolved = env[name];
    if (resolved === undefined || resolved === '') {
      throw new Error(`${usage} refers to app setting "%${name}%", but ${name} is not set`);
    }
    return resolved;
  });
}

function readJsonObject(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`Cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isRecord(parsed)) throw new Error(`${file} does not contain a JSON object`);
  return parsed;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function prop(obj: Record<string, unknown>, name: string): unknown {
  const key = Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : obj[key];
}

function objectProp(obj: Record<string, unknown>, name: string): Record<string, unknown> {
  const value = prop(obj, name);
  return isRecord(value) ? value : {};
}

function intProp(
  obj: Record<string, unknown>,
  name: string,
  fallback: number,
  min: number,
  max: number,
  file: string,
): number {
  const value = prop(obj, name);
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${file}: extensions.queues.${name} must be an integer between ${min} and ${max}`);
  }
  return value;
}

/** Parses a .NET TimeSpan string such as "00:00:30" or "1.02:00:00.5". */
function timeSpanProp(obj: Record<string, unknown>, name: string, fallback: number, file: string): number {
  const value = prop(obj, name);
  if (value === undefined) return fallback;
  const match = typeof value === 'string' ? /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(value) : null;
  if (!match) throw new Error(`${file}: extensions.queues.${name} must be a TimeSpan such as "00:00:30"`);
  const [, days, hours, minutes, seconds, fraction] = match;
  const ms = Number(`0.${fraction ?? '0'}`) * 1000;
  return (((Number(days ?? '0') * 24 + Number(hours)) * 60 + Number(minutes)) * 60 + Number(seconds)) * 1000 + ms;
}

function segmentMatcher(segment: string): RegExp {
  const source = segment
    .split('')
    .map((ch) => (ch === '*' ? '[^/]*' : ch === '?' ? '[^/]' : ch.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}

function listDir(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}
