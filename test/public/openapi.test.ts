/**
 * `GET /api/openapi.json` as a client sees it: a valid OpenAPI 3.1 document (checked by an OpenAPI validator),
 * listing exactly the HTTP functions the host registered, whose request schema is the one the endpoint enforces
 * and whose answer schemas fit what the endpoints really answer.
 */
import { randomUUID } from 'node:crypto';
import { dereference, validate, compileErrors } from '@readme/openapi-parser';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { gatewayClient, type GatewayAnswer, type GatewayClient } from '../support/gatewayClient';
import { startTestCloud, type TestCloud } from '../support/testEnv';

type Json = Record<string, unknown>;

/** The parts of an OpenAPI document the test reads. */
interface Content {
  [contentType: string]: { schema?: Json };
}
interface Operation {
  security?: Record<string, string[]>[];
  requestBody?: { content: Content };
  responses: Record<string, { content?: Content }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

let env: TestCloud;
let host: FunctionsHostProcess;
let gateway: GatewayClient;
let served: Response;
let document: Document;
/** The document with every `$ref` replaced by its target, so a schema can be compiled on its own. */
let resolved: Document;

/** The parser's own document type is a union of Swagger and OpenAPI versions; it gets a copy, as it mutates. */
const asParserInput = (doc: Document) => structuredClone(doc) as unknown as Parameters<typeof validate>[0];

const ajv = addFormats(new Ajv2020({ allErrors: true, strict: true }));

beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true, graph: { latencyMs: { min: 1, max: 5 } } });
  host = await startFunctionsHost(env.settings);
  gateway = gatewayClient(host);
  served = await fetch(`${host.url}/api/openapi.json`);
  document = (await served.clone().json()) as Document;
  resolved = (await dereference(asParserInput(document))) as unknown as Document;
});
afterAll(async () => {
  await host?.stop();
  await env?.close();
});

/** The host's HTTP registrations, from the lines it prints at start: `GET,POST http://.../api/route [level]`. */
function registeredOperations(): string[] {
  const lines = [...host.output().matchAll(/^\s+([A-Z,]+) http:\/\/[^/\s]+(\/\S*) \[(\w+)\]$/gm)];
  expect(lines.length).toBeGreaterThan(0);
  return lines.flatMap(([, methods, route, level]) => {
    // An HTTP function without `methods` accepts every method: the document could not say which ones it serves.
    if (methods === 'ANY') throw new Error(`${route} accepts any method; give it explicit methods`);
    // Route templates to OpenAPI paths: `{id:int}`, `{id?}`, `{id=1}` and `{*rest}` are all the parameter `{id}`.
    const path = route.replace(/\{\*?([^}:?=]+)[^}]*\}/g, '{$1}');
    return methods.split(',').map((method) => `${method} ${path} [${level}]`);
  });
}

/** The document's operations in the same form, the auth level read back from the security requirements. */
function documentedOperations(): string[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => {
      const schemes = (op.security ?? []).flatMap((requirement) => Object.keys(requirement));
      const level =
        schemes.length === 0 ? 'anonymous' : schemes.some((s) => s.startsWith('function')) ? 'function' : 'admin';
      return `${method.toUpperCase()} ${path} [${level}]`;
    }),
  );
}

function operation(method: string, path: string): Operation {
  const op = resolved.paths[path]?.[method] as Operation | undefined;
  if (!op) throw new Error(`the document has no ${method.toUpperCase()} ${path}`);
  return op;
}

/** Compiles the schema the document gives for a request body or an answer. */
function schemaOf(method: string, path: string, where: 'request' | number, contentType: string) {
  const op = operation(method, path);
  const content = where === 'request' ? op.requestBody?.content : op.responses[String(where)]?.content;
  const schema = content?.[contentType]?.schema;
  if (!schema) throw new Error(`no ${contentType} schema for ${method.toUpperCase()} ${path} ${where}`);
  return ajv.compile(schema);
}

/** Checks an answer against the document: its status is documented, with this content type and a fitting body. */
function expectDocumented(method: string, path: string, res: GatewayAnswer): Json {
  const contentType = (res.headers.get('content-type') ?? '').split(';')[0];
  const body = res.body;
  const validateBody = schemaOf(method, path, res.status, contentType);
  const answer = `${method.toUpperCase()} ${path} ${res.status}`;
  expect({ answer, valid: validateBody(body), errors: validateBody.errors ?? null }).toEqual({
    answer,
    valid: true,
    errors: null,
  });
  return body;
}

/** A GET of `path` without a key, as a browser or a client generator makes it. */
const anonymousGet = (path: string) => gateway.request('GET', path, undefined, { key: null });

const validSend = {
  from: 'alerts@contoso.com',
  to: ['someone@contoso.com', { address: 'external@example.org', name: 'External' }],
  cc: ['it@contoso.com'],
  subject: 'OpenAPI',
  html: '<p>See the logo <img src="cid:logo"></p>',
  importance: 'high',
  headers: { 'X-Ticket-Id': '4711' },
  attachments: [
    { name: 'logo.png', contentType: 'image/png', contentBase64: 'iVBORw0KGgo=', inline: true, contentId: 'logo' },
    { name: 'notes.txt', contentType: 'text/plain', contentBase64: 'SGVsbG8=' },
  ],
  saveToSentItems: false,
};

describe('GET /api/openapi.json', () => {
  it('is served without a key as JSON', () => {
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toMatch(/^application\/json\b/);
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    expect(document.openapi).toMatch(/^3\.1\.\d+$/);
    const result = await validate(asParserInput(document));
    expect(result.valid ? 'valid' : compileErrors(result)).toBe('valid');
    expect(result.warnings).toEqual([]);
  });

  it('lists every registered HTTP function with its methods and auth level, and nothing else', () => {
    expect(documentedOperations().sort()).toEqual(registeredOperations().sort());
    expect(registeredOperations()).toEqual(
      expect.arrayContaining([
        'POST /api/mail/send [function]',
        'GET /api/health [anonymous]',
        'GET /api/diagnostics [admin]',
        'GET /api/openapi.json [anonymous]',
      ]),
    );
  });

  it('publishes the request schema the send endpoint enforces', async () => {
    const validateRequest = schemaOf('post', '/api/mail/send', 'request', 'application/json');
    expect(validateRequest(validSend)).toBe(true);
    const accepted = await gateway.send({ ...validSend, subject: `openapi-${Date.now()}` });
    expect(accepted.status).toBe(202);

    // Each refused by the endpoint and by the published schema; refinements (one of text/html) are not JSON Schema.
    const invalid: Record<string, unknown> = {
      'an unknown field': { ...validSend, priority: 1 },
      'a malformed address': { ...validSend, to: ['not an address'] },
      'an unknown importance': { ...validSend, importance: 'urgent' },
      'an attachment without content': { ...validSend, attachments: [{ name: 'a.txt', contentType: 'text/plain' }] },
      'a recipient object without address': { ...validSend, to: [{ name: 'Nobody' }] },
      'no from': { ...validSend, from: undefined },
    };
    for (const [what, body] of Object.entries(invalid)) {
      const answer = await gateway.send(body);
      expect({ what, status: answer.status }).toEqual({ what, status: 400 });
      expect({ what, valid: validateRequest(JSON.parse(JSON.stringify(body))) }).toEqual({ what, valid: false });
    }
  });

  it('publishes sendAt as a date-time at most 7 days ahead, and each sendAt 400 gives an example the endpoint accepts', async () => {
    const requestSchema = operation('post', '/api/mail/send').requestBody?.content?.['application/json']?.schema;
    const sendAtSchema = (requestSchema as Json).properties as Record<string, Json>;
    expect(sendAtSchema.sendAt).toMatchObject({ type: 'string', format: 'date-time' });
    expect(sendAtSchema.sendAt.description).toMatch(/at most 7 days ahead/);
    const validateRequest = schemaOf('post', '/api/mail/send', 'request', 'application/json');
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 19);

    const refused = {
      'no time zone': tomorrow,
      'more than 7 days ahead': new Date(Date.now() + 8 * 86_400_000).toISOString(),
    };
    for (const [what, sendAt] of Object.entries(refused)) {
      const answer = await gateway.send<{ errors: { field: string; message: string }[] }>({ ...validSend, sendAt });
      expect({ what, status: answer.status }).toEqual({ what, status: 400 });
      const [error] = answer.body.errors;
      expect({ what, field: error.field }).toEqual({ what, field: 'sendAt' });
      const example = /e\.g\. (\S+)$/.exec(error.message)?.[1];
      expect({ what, example: /^\d{4}-\d\d-\d\dT\d\d:00:00Z$/.test(example ?? '') }).toEqual({ what, example: true });
      const scheduled = await gateway.send({ ...validSend, subject: `openapi-example-${Date.now()}`, sendAt: example });
      expect({ what, status: scheduled.status }).toEqual({ what, status: 202 });
      expect(scheduled.body.status).toBe('scheduled');
    }
    expect(validateRequest({ ...validSend, sendAt: tomorrow })).toBe(false);
    expect(validateRequest({ ...validSend, sendAt: `${tomorrow}Z` })).toBe(true);
  });

  it('describes the answers the endpoints really give', async () => {
    const accepted = expectDocumented('post', '/api/mail/send', await gateway.send({ ...validSend, subject: 'o' }));
    expect(accepted.status).toBe('queued');
    const sent = expectDocumented(
      'post',
      '/api/mail/send',
      await gateway.send({ ...validSend, subject: 'o' }, { wait: 30 }),
    );
    expect(sent.status).toBe('sent');
    const status = expectDocumented('get', '/api/mail/{id}', await gateway.status(String(sent.id)));
    expect(status.status).toBe('sent');
    expectDocumented('get', '/api/mail/{id}', await gateway.status(randomUUID()));
    const invalid = expectDocumented('post', '/api/mail/send', await gateway.send({ ...validSend, to: ['x'] }));
    expect(invalid.errors).toEqual([{ field: 'to[0]', message: 'is not a valid email address' }]);
    expectDocumented('post', '/api/mail/send', await gateway.send({ ...validSend, from: 'ceo@contoso.com' }));
    expectDocumented(
      'post',
      '/api/mail/send',
      await gateway.send('hello', { headers: { 'content-type': 'text/plain' } }),
    );
    expectDocumented('get', '/api/health', await gateway.health());
    const diagnostics = await gateway.diagnostics();
    expect(expectDocumented('get', '/api/diagnostics', diagnostics).status).toBe('ok');
    expectDocumented('get', '/api/openapi.json', await anonymousGet('/api/openapi.json'));
    const problemType = expectDocumented('get', '/api/problems/{slug}', await anonymousGet(String(invalid.type)));
    expect(problemType.type).toBe(invalid.type);
    expectDocumented('get', '/api/problems/{slug}', await anonymousGet('/api/problems/no-such-type'));

    // Keys are enforced by the host, which answers 401 with an empty body: documented, without content.
    const noKey = await gateway.send('{}', { key: null });
    expect(noKey.status).toBe(401);
    expect(operation('post', '/api/mail/send').responses['401']).toBeDefined();
    expect(operation('get', '/api/diagnostics').security).toEqual([{ masterKey: [] }, { masterKeyQuery: [] }]);
  });
});
