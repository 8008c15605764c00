/**
 * The local host's hop to the worker's HTTP proxy (test/sandbox/host/httpStreaming.ts), on its own: a front server
 * that forwards each request as the host's dispatcher does, and a stand-in proxy that counts its connections.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { forwardToWorker, relayResponse } from '../sandbox/host/httpStreaming';

const servers: Server[] = [];
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('forwarding to the worker proxy', () => {
  it('keeps one connection to the proxy for requests without a body, and retires one that carried a body', async () => {
    let connections = 0;
    const worker = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.method} ${body}`));
    });
    worker.on('connection', () => connections++);
    const proxyUri = await listen(worker);
    // What the dispatcher does once the worker's answer starts: stop forwarding, relay, then tear down what is left.
    const front = createServer((req, res) => {
      const forwarded = forwardToWorker(proxyUri, randomUUID(), req, new URL(req.url ?? '/', 'http://front'), 1e6);
      void forwarded.response.then(async (response) => {
        forwarded.stopForwarding();
        await relayResponse(response, res);
        forwarded.abort();
      });
    });
    const url = await listen(front);

    const answers: string[] = [];
    for (let i = 0; i < 3; i++) answers.push(await (await fetch(`${url}/get`)).text());
    answers.push(await (await fetch(`${url}/post`, { method: 'POST', body: 'hello' })).text());
    answers.push(await (await fetch(`${url}/get`)).text());

    expect(answers).toEqual(['GET ', 'GET ', 'GET ', 'POST hello', 'GET ']);
    // The three GETs and the POST share one; the POST's body could have been left partly unread, so the last GET
    // needs a new one.
    expect(connections).toBe(2);
  });
});
