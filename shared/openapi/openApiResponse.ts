/**
 * The HTTP answer of `GET /api/openapi.json`: the gateway's OpenAPI document, built from the route table once per
 * process (the table and the schemas cannot change while it runs) and served as the same JSON every time.
 */
import type { HttpResponseInit } from '@azure/functions';
import { APP_VERSION } from '../platform/packageInfo';
import { buildOpenApiDocument } from './openApiDocument';
import { OPERATIONS } from './operations';

let cache: string | undefined;

/** The document's JSON (built on first use). */
function built(): string {
  cache ??= JSON.stringify(
    buildOpenApiDocument(OPERATIONS, {
      title: 'Mail gateway for Microsoft 365',
      version: APP_VERSION,
      description:
        'Sends mail as permitted Microsoft 365 mailboxes through Microsoft Graph. Every failure is an ' +
        '`application/problem+json` document (RFC 9457).',
      tags: [
        { name: 'mail', description: 'Sending mail.' },
        { name: 'messages', description: 'Reading and filing received mail (ALLOWED_READ_MAILBOXES).' },
        { name: 'operations', description: 'Health, diagnostics and this document.' },
      ],
    }),
  );
  return cache;
}

/** Answers 200 with the document. */
export function openApiResponse(): HttpResponseInit {
  return { status: 200, headers: { 'content-type': 'application/json' }, body: built() };
}
