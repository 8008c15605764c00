/**
 * The OpenAPI document builder (shared/openapi): what one route-table entry becomes, and the tables it refuses.
 */
import { validate, compileErrors } from '@readme/openapi-parser';
import { z } from 'zod';
import { buildOpenApiDocument, type ApiInfo } from '../../shared/openapi/openApiDocument';
import { jsonResponse, problemResponse, type OperationSpec } from '../../shared/openapi/operationSpec';
import { OPERATIONS } from '../../shared/openapi/operations';

const info: ApiInfo = { title: 'test', version: '1.0.0', description: 'test', tags: [] };

const mailbox = z.strictObject({ address: z.email(), watch: z.boolean().default(true) });

// What the engineer adds for a new operation: one entry.
const putMailbox: OperationSpec = {
  operationId: 'putMailbox',
  method: 'put',
  path: '/api/mailboxes/{address}',
  auth: 'function',
  summary: 'Watch a mailbox',
  parameters: [{ name: 'address', in: 'path', description: 'The mailbox.', schema: z.email() }],
  requestBody: { name: 'Mailbox', schema: mailbox, description: 'What to watch.' },
  responses: { 200: jsonResponse('Watched.', 'WatchedMailbox', mailbox), 404: problemResponse('No such mailbox.') },
};

describe('OpenAPI document builder', () => {
  it('turns one route-table entry into a valid operation with its schemas, parameters and security', async () => {
    const doc = buildOpenApiDocument([...OPERATIONS.filter((o) => o.operationId === 'health'), putMailbox], info);
    const result = await validate(structuredClone(doc) as unknown as Parameters<typeof validate>[0]);
    expect(result.valid ? 'valid' : compileErrors(result)).toBe('valid');

    const put = doc.paths['/api/mailboxes/{address}'].put;
    expect(put).toMatchObject({
      operationId: 'putMailbox',
      parameters: [{ name: 'address', in: 'path', required: true, schema: { type: 'string', format: 'email' } }],
      requestBody: {
        required: true,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Mailbox' } } },
      },
      security: [{ functionKey: [] }, { functionKeyQuery: [] }, { masterKey: [] }, { masterKeyQuery: [] }],
    });
    expect(Object.keys(put.responses as object).sort()).toEqual(['200', '401', '404']);
    expect(doc.paths['/api/health'].get.security).toBeUndefined();
    expect(doc.components.securitySchemes.functionKey).toEqual({
      type: 'apiKey',
      in: 'header',
      name: 'x-functions-key',
      description: expect.any(String) as unknown,
    });
    expect(doc.components.schemas.ProblemDocument).toMatchObject({ required: ['type', 'title', 'status', 'detail'] });
  });

  it('publishes request bodies as accepted (defaults optional) and refuses one name for two readings', () => {
    const { schemas } = buildOpenApiDocument([putMailbox], info).components;
    expect(schemas.Mailbox).toMatchObject({ required: ['address'] });
    expect(schemas.WatchedMailbox).toMatchObject({ required: ['address', 'watch'] });
    // Read as a request (watch optional) and as an answer (watch always present): one name cannot say both.
    const sameName = { ...putMailbox, responses: { 200: jsonResponse('Watched.', 'Mailbox', mailbox) } };
    expect(() => buildOpenApiDocument([sameName], info)).toThrow(/'Mailbox' is used for two different schemas/);
    const otherSchema = { ...putMailbox, responses: { 200: jsonResponse('Watched.', 'Mailbox', z.object({})) } };
    expect(() => buildOpenApiDocument([otherSchema], info)).toThrow(/'Mailbox' is used for two different schemas/);
  });

  it('refuses a table the document cannot express', () => {
    const ok: OperationSpec = { ...putMailbox, responses: { 204: { description: 'Watched.' } } };
    expect(() => buildOpenApiDocument([ok, { ...ok, operationId: 'again' }], info)).toThrow(
      /PUT \/api\/mailboxes\/\{address\} is listed twice/,
    );
    expect(() => buildOpenApiDocument([ok, { ...ok, method: 'delete' }], info)).toThrow(
      /operationId 'putMailbox' is used twice/,
    );
    expect(() => buildOpenApiDocument([{ ...ok, parameters: [] }], info)).toThrow(/no parameter for .*\{address\}/);
  });
});
