/**
 * Builds the OpenAPI 3.1 document of the HTTP API from the route table. Schemas come from zod through
 * `z.toJSONSchema` (JSON Schema 2020-12, OpenAPI 3.1's default dialect): request bodies as the handler accepts
 * them (`io: 'input'`: defaulted fields are optional), answers as the gateway produces them (`io: 'output'`).
 * Refinements (e.g. "exactly one of text or html") have no JSON Schema form and are left to the descriptions and
 * the 400 answer.
 */
import { z } from 'zod';
import { attachmentBlobSchema, attachmentContentSchema } from '../mail/sendRequest';
import type { AuthLevel, HeaderSpec, NamedSchema, OperationSpec, ParameterSpec } from './operationSpec';

/** A JSON Schema or OpenAPI object, as plain JSON. */
type Json = Record<string, unknown>;

/** The document, as plain JSON. */
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  tags: { name: string; description: string }[];
  paths: Record<string, Record<string, Json>>;
  components: { schemas: Record<string, Json>; securitySchemes: Record<string, Json> };
}

/** What the document says about the API as a whole. */
export interface ApiInfo {
  title: string;
  version: string;
  description: string;
  tags: { name: string; description: string }[];
}

/** The OpenAPI version the document declares. */
const OPENAPI_VERSION = '3.1.1';

// Azure Functions keys: the host accepts either key in the `x-functions-key` header or the `code` query parameter.
const SECURITY_SCHEMES: Record<string, Json> = {
  functionKey: {
    type: 'apiKey',
    in: 'header',
    name: 'x-functions-key',
    description: 'A function key or a host key (the master key is a host key).',
  },
  functionKeyQuery: {
    type: 'apiKey',
    in: 'query',
    name: 'code',
    description: 'A function key or a host key (the master key is a host key).',
  },
  masterKey: { type: 'apiKey', in: 'header', name: 'x-functions-key', description: "The Function App's master key." },
  masterKeyQuery: { type: 'apiKey', in: 'query', name: 'code', description: "The Function App's master key." },
};

// Alternatives (any one suffices): the master key is accepted wherever a function key is.
const SECURITY: Record<AuthLevel, Json[] | undefined> = {
  anonymous: undefined,
  function: [{ functionKey: [] }, { functionKeyQuery: [] }, { masterKey: [] }, { masterKeyQuery: [] }],
  admin: [{ masterKey: [] }, { masterKeyQuery: [] }],
};

const UNAUTHORIZED: Json = { description: 'No valid key: the Functions host answers with an empty body.' };

/** Converts a zod schema to JSON Schema without the `$schema` marker (the document's dialect applies). */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const converted = z.toJSONSchema(schema, {
    io,
    target: 'draft-2020-12',
    // An attachment's content is a base64 string for callers; the blob it may become inside the gateway (a class
    // instance, which zod cannot represent) is no JSON. Any other such schema is still an error.
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema: converting, path }) => {
      if (zodSchema === attachmentContentSchema) {
        for (const key of Object.keys(converting)) delete converting[key];
        Object.assign(converting, { type: 'string', contentEncoding: 'base64' });
      } else if (zodSchema._zod.def.type === 'custom' && zodSchema !== attachmentBlobSchema) {
        throw new Error(`OpenAPI: the schema at ${path.join('.')} cannot be represented in JSON Schema`);
      }
    },
  }) as Json;
  delete converted.$schema;
  return converted;
}

/** Collects named schemas into `components.schemas`; one name must always mean the same schema, read one way. */
class ComponentSchemas {
  readonly #seen = new Map<string, { schema: z.ZodType; io: 'input' | 'output' }>();
  readonly schemas: Record<string, Json> = {};

  ref(named: NamedSchema, io: 'input' | 'output'): Json {
    const seen = this.#seen.get(named.name);
    if (seen && (seen.schema !== named.schema || seen.io !== io))
      throw new Error(`OpenAPI: component schema '${named.name}' is used for two different schemas`);
    if (!seen) {
      this.#seen.set(named.name, { schema: named.schema, io });
      this.schemas[named.name] = jsonSchema(named.schema, io);
    }
    return { $ref: `#/components/schemas/${named.name}` };
  }
}

function header(spec: HeaderSpec): Json {
  return { description: spec.description, required: spec.required ?? false, schema: jsonSchema(spec.schema, 'output') };
}

function parameter(spec: ParameterSpec): Json {
  return {
    name: spec.name,
    in: spec.in,
    description: spec.description,
    required: spec.in === 'path' ? true : (spec.required ?? false),
    schema: jsonSchema(spec.schema, 'input'),
  };
}

function operation(spec: OperationSpec, components: ComponentSchemas): Json {
  const where = `${spec.method.toUpperCase()} ${spec.path}`;
  const declared = new Set((spec.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name));
  for (const [, name] of spec.path.matchAll(/\{([^}]+)\}/g)) {
    if (!declared.has(name)) throw new Error(`OpenAPI: ${where} has no parameter for its path segment {${name}}`);
  }
  const responses: Record<string, Json> = {};
  for (const [status, response] of Object.entries(spec.responses)) {
    responses[status] = {
      description: response.description,
      ...(response.headers
        ? { headers: Object.fromEntries(Object.entries(response.headers).map(([n, h]) => [n, header(h)])) }
        : {}),
      ...(response.body
        ? { content: { [response.body.contentType]: { schema: components.ref(response.body, 'output') } } }
        : {}),
    };
  }
  if (spec.auth !== 'anonymous') responses['401'] ??= UNAUTHORIZED;
  const security = SECURITY[spec.auth];
  return {
    operationId: spec.operationId,
    summary: spec.summary,
    ...(spec.description ? { description: spec.description } : {}),
    ...(spec.tags ? { tags: spec.tags } : {}),
    ...(spec.parameters?.length ? { parameters: spec.parameters.map(parameter) } : {}),
    ...(spec.requestBody
      ? {
          requestBody: {
            description: spec.requestBody.description,
            required: spec.requestBody.required ?? true,
            content: { 'application/json': { schema: components.ref(spec.requestBody, 'input') } },
          },
        }
      : {}),
    responses,
    ...(security ? { security } : {}),
  };
}

/** Builds the document; throws on a table the document cannot express (duplicate operations, undeclared path parameters). */
export function buildOpenApiDocument(operations: readonly OperationSpec[], info: ApiInfo): OpenApiDocument {
  const components = new ComponentSchemas();
  const paths: OpenApiDocument['paths'] = {};
  const operationIds = new Set<string>();
  for (const spec of operations) {
    const item = (paths[spec.path] ??= {});
    if (item[spec.method]) throw new Error(`OpenAPI: ${spec.method.toUpperCase()} ${spec.path} is listed twice`);
    if (operationIds.has(spec.operationId)) throw new Error(`OpenAPI: operationId '${spec.operationId}' is used twice`);
    operationIds.add(spec.operationId);
    item[spec.method] = operation(spec, components);
  }
  const usedSchemes = new Set(
    operations.flatMap((op) => (SECURITY[op.auth] ?? []).flatMap((requirement) => Object.keys(requirement))),
  );
  return {
    openapi: OPENAPI_VERSION,
    info: { title: info.title, version: info.version, description: info.description },
    tags: info.tags,
    paths,
    components: {
      schemas: components.schemas,
      securitySchemes: Object.fromEntries(Object.entries(SECURITY_SCHEMES).filter(([name]) => usedSchemes.has(name))),
    },
  };
}
