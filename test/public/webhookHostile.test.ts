/**
 * Hostile callers of Graph's anonymous webhooks (`/api/graph/notifications`, `/api/graph/lifecycle`), through the
 * functions host in its own process: what the handshake answers, bodies that never end, forged subscription ids by
 * the thousand, ids that try to write log lines, and clients that hang up mid-body. The host's table requests go
 * through a counting proxy in front of this file's own Azurite, so the storage lookups a POST causes are counted
 * where they happen.
 */
import { request as httpRequest } from 'node:http';
import { startHttpServer, type RunningServer } from '../emulators/httpServer';
import { startFunctionsHost, type FunctionsHostProcess } from '../support/functionsHost';
import { startTestCloud, type TestCloud } from '../support/testEnv';

const ROUTES = ['/api/graph/notifications', '/api/graph/lifecycle'];

let env: TestCloud;
let host: FunctionsHostProcess;
let tableProxy: RunningServer;
/** Paths of the table requests the host made, oldest first. */
const tableRequests: string[] = [];

/** An HTTP proxy in front of Azurite's table endpoint that records every request path. */
async function startTableProxy(target: URL): Promise<RunningServer> {
  return startHttpServer(async (req, res) => {
    tableRequests.push(decodeURIComponent(req.url ?? ''));
    await new Promise<void>((resolve, reject) => {
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res).once('finish', resolve).once('error', reject);
        },
      );
      upstream.once('error', reject);
      req.pipe(upstream);
    });
  });
}

beforeAll(async () => {
  env = await startTestCloud({ privateStorage: true, users: ['hooked'], graph: { latencyMs: { min: 1, max: 3 } } });
  const connection = env.settings.AzureWebJobsStorage;
  const tableEndpoint = new URL(/TableEndpoint=([^;]+)/.exec(connection)![1]);
  tableProxy = await startTableProxy(tableEndpoint);
  host = await startFunctionsHost({
    ...env.settings,
    AzureWebJobsStorage: connection.replace(
      /TableEndpoint=http:\/\/[^/]+/,
      `TableEndpoint=http://127.0.0.1:${tableProxy.port}`,
    ),
    ALLOWED_WATCH_MAILBOXES: 'hooked@contoso.com',
  });
});
afterAll(async () => {
  await host?.stop();
  await tableProxy?.close();
  await env?.close();
});

describe('the validation handshake', () => {
  it.each(ROUTES)(
    '%s reflects the token unchanged as text/plain with nosniff, so no browser sniffs it',
    async (path) => {
      const token = '<html><script>alert(1)</script></html> a+b/c=d ü';
      const res = await fetch(`${host.httpsUrl}${path}?validationToken=${encodeURIComponent(token)}`, {
        method: 'POST',
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(await res.text()).toBe(token);
    },
  );
});
