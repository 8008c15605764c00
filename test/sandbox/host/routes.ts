/**
 * ASP.NET-style route templates as the Functions host understands them: literal segments (case-insensitive),
 * `{name}`, `{name?}`, `{name=default}`, `{*rest}` catch-alls, segments mixing text and parameters, and the common
 * inline constraints (`int`, `guid`, `min(1)`, `regex(...)`, ...). Unknown constraints are ignored rather than
 * rejected, so a template the real host accepts always routes here too, if more permissively.
 */

type Constraint = (value: string) => boolean;

interface ParamSpec {
  name: string;
  optional: boolean;
  defaultValue: string | undefined;
  constraints: Constraint[];
}

type Segment =
  | { kind: 'literal'; text: string }
  | { kind: 'param'; param: ParamSpec }
  | { kind: 'catchAll'; param: ParamSpec }
  | { kind: 'complex'; pattern: RegExp; params: ParamSpec[] };

/** A compiled route template. */
export interface CompiledRoute {
  /** The template as registered, without leading or trailing slashes. */
  readonly template: string;
  /** Per-segment specificity (lower is more specific), used to order candidate routes like ASP.NET does. */
  readonly precedence: readonly number[];
  /** Route parameters when the decoded path segments match, otherwise undefined. */
  match(segments: readonly string[]): Record<string, string> | undefined;
}

/** Compiles a route template; throws when it is malformed (unbalanced braces, empty parameter names). */
export function compileRoute(template: string): CompiledRoute {
  const normalized = template.replace(/^~?\/+/, '').replace(/\/+$/, '');
  const segments = normalized === '' ? [] : normalized.split('/').map((s) => parseSegment(s, template));
  const precedence = segments.map((s) => {
    switch (s.kind) {
      case 'literal':
        return 1;
      case 'complex':
        return 2;
      case 'param':
        return s.param.constraints.length > 0 ? 3 : s.param.optional || s.param.defaultValue !== undefined ? 4.5 : 4;
      case 'catchAll':
        return 5;
    }
  });
  return {
    template: normalized,
    precedence,
    match: (pathSegments) => matchSegments(segments, pathSegments),
  };
}

/** Orders routes most specific first (ties keep registration order when used with a stable sort). */
export function compareRoutePrecedence(a: CompiledRoute, b: CompiledRoute): number {
  const length = Math.max(a.precedence.length, b.precedence.length);
  for (let i = 0; i < length; i++) {
    const pa = a.precedence[i] ?? 0;
    const pb = b.precedence[i] ?? 0;
    if (pa !== pb) return pa - pb;
  }
  return 0;
}

/**
 * Splits a URL path (after the route prefix) into decoded segments; a single trailing slash is ignored as ASP.NET
 * does. Returns undefined for malformed percent-encoding.
 */
export function splitPath(pathname: string): string[] | undefined {
  const trimmed = pathname.replace(/^\/+/, '').replace(/\/$/, '');
  if (trimmed === '') return [];
  try {
    return trimmed.split('/').map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}

function matchSegments(segments: readonly Segment[], path: readonly string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    if (segment.kind === 'catchAll') {
      const rest = path.slice(i).join('/');
      const value = rest === '' ? segment.param.defaultValue : rest;
      if (value !== undefined) {
        if (!segment.param.constraints.every((c) => c(value))) return undefined;
        params[segment.param.name] = value;
      }
      return params;
    }
    if (i >= path.length) {
      // Only trailing optional (or defaulted) parameters may be absent from the path.
      if (segment.kind !== 'param' || (!segment.param.optional && segment.param.defaultValue === undefined)) {
        return undefined;
      }
      if (segment.param.defaultValue !== undefined) params[segment.param.name] = segment.param.defaultValue;
      continue;
    }
    const value = path[i];
    if (segment.kind === 'literal') {
      if (value.toLowerCase() !== segment.text.toLowerCase()) return undefined;
    } else if (segment.kind === 'param') {
      if (value === '' || !segment.param.constraints.every((c) => c(value))) return undefined;
      params[segment.param.name] = value;
    } else {
      const match = segment.pattern.exec(value);
      if (!match) return undefined;
      for (let p = 0; p < segment.params.length; p++) {
        const spec = segment.params[p];
        const captured = match[p + 1];
        if (!spec.constraints.every((c) => c(captured))) return undefined;
        params[spec.name] = captured;
      }
    }
  }
  return path.length > segments.length ? undefined : params;
}

function parseSegment(text: string, template: string): Segment {
  const tokens: { start: number; end: number; body: string }[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '}') throw new Error(`Route template "${template}" has an unmatched "}"`);
    if (text[i] !== '{') continue;
    const end = text.indexOf('}', i);
    if (end < 0) throw new Error(`Route template "${template}" has an unmatched "{"`);
    tokens.push({ start: i, end, body: text.slice(i + 1, end) });
    i = end;
  }
  if (tokens.length === 0) return { kind: 'literal', text };
  if (tokens.length === 1 && tokens[0].start === 0 && tokens[0].end === text.length - 1) {
    const body = tokens[0].body;
    const catchAll = body.startsWith('*');
    const param = parseParam(body.replace(/^\*{1,2}/, ''), template);
    return catchAll ? { kind: 'catchAll', param } : { kind: 'param', param };
  }
  let source = '';
  let cursor = 0;
  const params: ParamSpec[] = [];
  for (const token of tokens) {
    source += escapeRegExp(text.slice(cursor, token.start)) + '(.+?)';
    params.push(parseParam(token.body, template));
    cursor = token.end + 1;
  }
  source += escapeRegExp(text.slice(cursor));
  return { kind: 'complex', pattern: new RegExp(`^${source}$`, 'i'), params };
}

function parseParam(body: string, template: string): ParamSpec {
  let rest = body;
  let optional = false;
  let defaultValue: string | undefined;
  const eq = indexOutsideParens(rest, '=');
  if (eq >= 0) {
    defaultValue = rest.slice(eq + 1);
    rest = rest.slice(0, eq);
  } else if (rest.endsWith('?')) {
    optional = true;
    rest = rest.slice(0, -1);
  }
  const [name, ...constraintTexts] = splitOutsideParens(rest, ':');
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new Error(`Route template "${template}" has an invalid parameter name "${name}"`);
  }
  const constraints = constraintTexts.map(parseConstraint).filter((c): c is Constraint => c !== undefined);
  return { name, optional, defaultValue, constraints };
}

function parseConstraint(text: string): Constraint | undefined {
  const match = /^([A-Za-z]+)(?:\((.*)\))?$/.exec(text);
  if (!match) return undefined;
  const kind = match[1].toLowerCase();
  const args = (match[2] ?? '').split(',').map((a) => a.trim());
  const num = (i: number): number => Number(args[i]);
  switch (kind) {
    case 'int':
    case 'long':
      return (v) => /^-?\d+$/.test(v);
    case 'bool':
      return (v) => /^(true|false)$/i.test(v);
    case 'guid':
      return (v) => /^[{(]?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}[)}]?$/i.test(v);
    case 'alpha':
      return (v) => /^[a-z]+$/i.test(v);
    case 'double':
    case 'float':
    case 'decimal':
      return (v) => /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v);
    case 'datetime':
      return (v) => !Number.isNaN(Date.parse(v));
    case 'min':
      return (v) => /^-?\d+$/.test(v) && Number(v) >= num(0);
    case 'max':
      return (v) => /^-?\d+$/.test(v) && Number(v) <= num(0);
    case 'range':
      return (v) => /^-?\d+$/.test(v) && Number(v) >= num(0) && Number(v) <= num(1);
    case 'minlength':
      return (v) => v.length >= num(0);
    case 'maxlength':
      return (v) => v.length <= num(0);
    case 'length':
      return args.length > 1 ? (v) => v.length >= num(0) && v.length <= num(1) : (v) => v.length === num(0);
    case 'regex': {
      // ASP.NET evaluates regex constraints case-insensitively; an invalid pattern simply never matches.
      let pattern: RegExp | undefined;
      try {
        pattern = new RegExp(match[2] ?? '', 'i');
      } catch {
        pattern = undefined;
      }
      return (v) => pattern?.test(v) ?? false;
    }
    default:
      return undefined;
  }
}

function splitOutsideParens(text: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth = Math.max(0, depth - 1);
    if (ch === separator && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

function indexOutsideParens(text: string, target: string): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') depth++;
    if (text[i] === ')') depth = Math.max(0, depth - 1);
    if (text[i] === target && depth === 0) return i;
  }
  return -1;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
