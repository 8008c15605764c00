/**
 * Small HTTP(S) helpers the emulators share: a loopback server with a CA-issued certificate, body reading with a
 * size cap, and JSON replies.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { issueServerCertificate, type PemPair } from './testCa';

/** A request handler; a thrown error becomes a 500 that names the emulator bug. */
export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/** A running loopback server. */
export interface RunningServer {
  /** Origin, e.g. `https://127.0.0.1:43123`. */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** Starts an HTTPS server on 127.0.0.1 with a certificate issued by `ca` (port 0 picks a free one). */
export function startHttpsServer(ca: PemPair, handler: Handler, port = 0): Promise<RunningServer> {
  const tls = issueServerCertificate(ca);
  const server = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, wrap(handler));
  return listen(server, 'https', port);
}

/** Starts a plain HTTP server on 127.0.0.1 (as App Service's local managed-identity endpoint is). */
export function startHttpServer(handler: Handler, port = 0): Promise<RunningServer> {
  return listen(createHttpServer(wrap(handler)), 'http', port);
}

function wrap(handler: Handler) {
  return (req: IncomingMessage, res: ServerResponse) => {
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((err: unknown) => {
        if (!res.headersSent) {
          sendJson(res, 500, {
            error: { code: 'EmulatorBug', message: String(err instanceof Error ? err.stack : err) },
          });
        } else {
          res.destroy();
        }
      });
  };
}

function listen(server: Server, scheme: 'http' | 'https', port: number): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const actual = (server.address() as AddressInfo).port;
      server.keepAliveTimeout = 5000;
      resolve({
        url: `${scheme}://127.0.0.1:${actual}`,
        port: actual,
        server,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Thrown by {@link readBody} when the body exceeds its cap. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body exceeds ${limit} bytes`);
  }
}

/** Reads the whole request body, failing with {@link BodyTooLargeError} past `limit` bytes. */
export async function readBody(req: IncomingMessage, limit = 200 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLargeError(limit);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Sends `body` as JSON with `status` and extra headers. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Resolves after `ms` milliseconds (emulated service latency). */
export function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
