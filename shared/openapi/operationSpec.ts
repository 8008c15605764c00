/**
 * The shape of one entry of the API's route table (`operations.ts`), and the few helpers that keep an entry short.
 * Schemas are zod schemas; the document builder turns them into JSON Schema, so the document shows the schema the
 * handler validates with rather than a hand-written copy of it.
 */
import type { z } from 'zod';
import { problemDocumentSchema } from './responseSchemas';

/** Who may call an operation, as the Functions host enforces it (`authLevel` of `app.http`). */
export type AuthLevel = 'anonymous' | 'function' | 'admin';

/** HTTP methods an operation can have (lower case, as OpenAPI path items name them). */
export type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch';

/** A schema published under `components.schemas` by name. */
export interface NamedSchema {
  /** Component name, e.g. `SendMailRequest`; one name, one schema. */
  name: string;
  schema: z.ZodType;
}

/** A response header. */
export interface HeaderSpec {
  description: string;
  required?: boolean;
  schema: z.ZodType;
}

/** A request header, or a query or path parameter. */
export interface ParameterSpec extends HeaderSpec {
  name: string;
  /** Path parameters are always required. */
  in: 'header' | 'query' | 'path';
}

/** One documented answer. */
export interface ResponseSpec {
  description: string;
  body?: NamedSchema & { contentType: 'application/json' | 'application/problem+json' };
  /** By header name. */
  headers?: Record<string, HeaderSpec>;
}

/** One operation: a method on a path, as the function registers it. */
export interface OperationSpec {
  /** Unique per operation: the function's name in `app.http(name, ...)`, or a verb for one of its methods. */
  operationId: string;
  method: HttpMethod;
  /** Full path including the host's route prefix, OpenAPI style: `/api/mailboxes/{id}`. */
  path: string;
  auth: AuthLevel;
  summary: string;
  description?: string;
  tags?: string[];
  parameters?: ParameterSpec[];
  /** A JSON body, validated by the handler with exactly this schema. */
  requestBody?: NamedSchema & {
    description: string;
    /** False when the operation may be called without a body (default true). */
    required?: boolean;
  };
  /** By status code. `401` is added for `function` and `admin` operations (the host answers it). */
  responses: Record<number, ResponseSpec>;
}

/** A JSON answer with a named schema. */
export function jsonResponse(
  description: string,
  name: string,
  schema: z.ZodType,
  headers?: ResponseSpec['headers'],
): ResponseSpec {
  return { description, body: { contentType: 'application/json', name, schema }, ...(headers ? { headers } : {}) };
}

/** A problem-document answer (`application/problem+json`, RFC 9457). */
export function problemResponse(description: string, headers?: ResponseSpec['headers']): ResponseSpec {
  return {
    description,
    body: { contentType: 'application/problem+json', name: 'ProblemDocument', schema: problemDocumentSchema },
    ...(headers ? { headers } : {}),
  };
}
