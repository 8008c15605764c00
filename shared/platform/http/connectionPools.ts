/**
 * The process's connection pools: one keep-alive agent for every storage client (table, queue, blob) and one undici
 * dispatcher for every Graph call, each with a bounded number of sockets per origin.
 *
 * Why bounded and shared: each SDK client otherwise keeps its own keep-alive agent with no socket limit, so a burst of
 * requests (or a storage hiccup, during which every waiting request opens a connection of its own) opens hundreds of
 * connections. Measured on Azurite (issue 18): every slow accept was the first request on a new connection, accepted
 * 13–32 s late; capping at 16 sockets per client took p99 from 26–31 s to 4.4 s at the same throughput. In Azure the
 * same habit exhausts the instance's SNAT ports, which Microsoft's Functions guidance warns about (reuse clients,
 * bound connections). A request that finds every socket busy waits in the agent's queue for one, which costs less
 * than a new TCP (and TLS) handshake.
 */
import http from 'node:http';
import https from 'node:https';
import { Agent as UndiciAgent, type Dispatcher } from 'undici';

/**
 * Sockets per storage origin (one origin per service: table, queue, blob): a request's storage calls are sequential
 * and short (milliseconds), so 16 in flight per service keep a host's queue trigger (up to 16 messages at once) and
 * its HTTP accepts busy without a handshake per request.
 */
export const STORAGE_SOCKETS_PER_ORIGIN = 16;

/**
 * Sockets to Graph's origin: Outlook allows 4 concurrent requests per app and mailbox, and an instance works a few
 * mailboxes at once; 32 leave room for reads (message API, attachments) beside the outbox's sends.
 */
export const GRAPH_SOCKETS_PER_ORIGIN = 32;

/** How long an idle Graph socket stays open: below the 60 s after which Azure's load balancers drop idle flows. */
const IDLE_SOCKET_MS = 30_000;

const agentOptions = {
  keepAlive: true,
  maxSockets: STORAGE_SOCKETS_PER_ORIGIN,
  maxFreeSockets: STORAGE_SOCKETS_PER_ORIGIN,
  // The most recently used socket first, so that idle ones time out instead of all being kept barely alive.
  scheduling: 'lifo' as const,
};
const storageHttp = new http.Agent(agentOptions);
const storageHttps = new https.Agent(agentOptions);

/** The process's storage agent for `url` (Azurite speaks plain HTTP on loopback, Azure Storage HTTPS). */
export function storageAgent(url: string): http.Agent {
  return url.startsWith('https:') ? storageHttps : storageHttp;
}

/** Sockets of the storage agents, open (in use or idle) per origin; for tests and diagnostics. */
export function storageSockets(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const agent of [storageHttp, storageHttps]) {
    for (const pool of [agent.sockets, agent.freeSockets]) {
      for (const [origin, sockets] of Object.entries(pool))
        counts[origin] = (counts[origin] ?? 0) + (sockets?.length ?? 0);
    }
  }
  return counts;
}

let graph: Dispatcher | undefined;

/** The process's dispatcher for Graph calls (the Graph client's transport, and the upload-session PUTs). */
export function graphDispatcher(): Dispatcher {
  graph ??= new UndiciAgent({
    connections: GRAPH_SOCKETS_PER_ORIGIN,
    keepAliveTimeout: IDLE_SOCKET_MS,
    keepAliveMaxTimeout: IDLE_SOCKET_MS,
  });
  return graph;
}
