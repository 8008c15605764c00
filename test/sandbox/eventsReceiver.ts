/**
 * The sandbox's stand-in for a downstream service: an HTTPS endpoint (test CA) that the gateway's events webhook
 * (`EVENTS_WEBHOOK_URL`) posts to. It verifies each Standard Webhooks signature, prints one line per event, and lists
 * what it received at `GET /events`, so a person trying the sandbox sees mail events arrive.
 *
 * `GET /events?type=mail.received&subject=<subject>&wait=<seconds>` lists only the matching events and, while none
 * matches, waits up to `wait` seconds for one: a script reads the event of the mail it just sent without guessing how
 * long delivery takes on a busy machine.
 */
import { EventEmitter } from 'node:events';
import { Webhook } from 'standardwebhooks';
import { readBody, sendJson, startHttpsServer, type RunningServer } from '../emulators/httpServer';
import type { PemPair } from '../emulators/testCa';

/** A received event as listed at `GET /events`. */
interface ReceivedEvent {
  receivedAt: string;
  signatureValid: boolean;
  event: unknown;
}

/** A running receiver. */
export interface EventsReceiver {
  /** Where the gateway posts events (`EVENTS_WEBHOOK_URL`). */
  url: string;
  close(): Promise<void>;
}

/** Starts the receiver on a free loopback port; `secret` is the gateway's `EVENTS_SIGNING_SECRET`. */
export async function startEventsReceiver(ca: PemPair, secret: string, port = 0): Promise<EventsReceiver> {
  const verifier = new Webhook(secret);
  const received: ReceivedEvent[] = [];
  const arrivals = new EventEmitter();
  arrivals.setMaxListeners(0);
  const server: RunningServer = await startHttpsServer(
    ca,
    async (req, res) => {
      if (req.method === 'GET') {
        const query = new URL(req.url ?? '/', 'https://receiver').searchParams;
        const matches = (): ReceivedEvent[] => received.filter((r) => matchesQuery(r.event, query));
        const waitMs = Math.min(Number(query.get('wait') ?? 0) || 0, 60) * 1000;
        if (waitMs > 0 && matches().length === 0) await nextMatch(arrivals, () => matches().length > 0, waitMs);
        sendJson(res, 200, { value: matches() });
        return;
      }
      // A content event carries a body of up to 1 MB, which its JSON escapes can make several times larger.
      const body = (await readBody(req, 8 * 1024 * 1024)).toString('utf8');
      let event: unknown;
      let signatureValid = true;
      try {
        event = verifier.verify(body, req.headers as Record<string, string>);
      } catch {
        signatureValid = false;
        event = safeJson(body);
      }
      received.push({ receivedAt: new Date().toISOString(), signatureValid, event });
      arrivals.emit('event');
      const e = event as { type?: string; source?: string; subject?: string; data?: { subject?: string } };
      // mail.received names the mail by its subject line; outbox events name the outbox id.
      const about = e.data?.subject !== undefined ? `"${e.data.subject}"` : (e.subject ?? '');
      console.log(
        `[events] ${e.type ?? '?'} ${e.source ?? ''} ${about} (signature ${signatureValid ? 'verified' : 'INVALID'})`,
      );
      res.writeHead(signatureValid ? 204 : 401).end();
    },
    port,
  );
  return { url: `${server.url}/events`, close: () => server.close() };
}

/** Whether an event has the `type` and `data.subject` the query names (a query without them matches every event). */
function matchesQuery(event: unknown, query: URLSearchParams): boolean {
  const e = event as { type?: string; data?: { subject?: string } } | null;
  const type = query.get('type');
  const subject = query.get('subject');
  return (type === null || e?.type === type) && (subject === null || e?.data?.subject === subject);
}

/** Resolves once `matched()` holds after an arrival, or after `ms`. */
function nextMatch(arrivals: EventEmitter, matched: () => boolean, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      arrivals.off('event', onEvent);
      resolve();
    };
    const onEvent = (): void => {
      if (matched()) done();
    };
    const timer = setTimeout(done, ms);
    arrivals.on('event', onEvent);
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
