/**
 * The OData query options the emulator implements ($select, $top, $skip) with Graph's validation, and server-driven
 * paging through opaque `@odata.nextLink` URLs that clients must follow as given.
 */
import { GraphError } from './graphResponse';

/** How a resource type's properties are selected. */
export interface SelectableType {
  /** OData type name for error messages, e.g. `microsoft.graph.message`. */
  typeName: string;
  /** Every property `$select` may name. */
  properties: readonly string[];
  /** Properties returned without `$select`. */
  defaults: readonly string[];
  /** Properties returned whatever `$select` says (Exchange always includes `id`). */
  always: readonly string[];
  /** Error code for an unknown property (Exchange and the directory use different ones). */
  errorCode: string;
}

/** The `$select` property list (canonical casing) or the type's defaults when absent. */
export function selectedProperties(query: URLSearchParams, type: SelectableType): string[] {
  const raw = query.get('$select');
  if (raw === null) return [...type.defaults];
  const selected = new Set(type.always);
  for (const name of raw.split(',').map((s) => s.trim())) {
    if (name === '') continue;
    const canonical = type.properties.find((p) => p.toLowerCase() === name.toLowerCase());
    if (!canonical) {
      throw new GraphError(
        400,
        type.errorCode,
        `Could not find a property named '${name}' on type '${type.typeName}'.`,
      );
    }
    selected.add(canonical);
  }
  return [...selected];
}

/** `resource` reduced to `properties` (absent ones as null, as Graph renders them), after any leading annotations. */
export function project(
  resource: object,
  properties: readonly string[],
  annotations: Record<string, unknown> = {},
): Record<string, unknown> {
  const source = resource as Record<string, unknown>;
  const result: Record<string, unknown> = { ...annotations };
  for (const name of properties) result[name] = source[name] ?? null;
  return result;
}

/** Paging options of a collection request. */
export interface Paging {
  top: number;
  skip: number;
}

/** Reads `$top` (default `defaultTop`, at most `maxTop`) and `$skip`, rejecting what Graph rejects. */
export function readPaging(query: URLSearchParams, defaultTop: number, maxTop: number): Paging {
  const top = readCount(query, '$top', defaultTop);
  if (top > maxTop) {
    throw new GraphError(
      400,
      'BadRequest',
      `The limit of '${maxTop}' for Top query has been exceeded. The value from the incoming request is '${top}'.`,
    );
  }
  return { top, skip: readCount(query, '$skip', 0) };
}

function readCount(query: URLSearchParams, name: string, fallback: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw.trim()))
    throw new GraphError(400, 'BadRequest', `Invalid value '${raw}' for ${name} query option.`);
  return Number(raw.trim());
}

/** One page of `items` and, when more remain, the link to the next page (same query, next `$skip`). */
export function page<T>(items: readonly T[], paging: Paging, requestUrl: URL): { value: T[]; nextLink?: string } {
  const value = items.slice(paging.skip, paging.skip + paging.top);
  if (paging.skip + paging.top >= items.length) return { value };
  const next = new URL(requestUrl.href);
  next.searchParams.set('$top', String(paging.top));
  next.searchParams.set('$skip', String(paging.skip + paging.top));
  return { value, nextLink: next.href };
}

/**
 * Fails loudly on `$` options the route does not implement (`$filter`, `$orderby`, ...): silently ignoring them
 * would hand the product unfiltered data and hide the gap.
 */
export function assertQueryOptions(query: URLSearchParams, allowed: readonly string[]): void {
  for (const name of query.keys()) {
    if (name.startsWith('$') && !allowed.some((a) => a.toLowerCase() === name.toLowerCase())) {
      throw new GraphError(501, 'NotImplemented', `The Graph emulator does not implement query option '${name}' here.`);
    }
  }
}
