/**
 * The sandbox's stand-in for a downstream service: an HTTPS endpoint (test CA) that the gateway's events webhook
 * (`EVENTS_WEBHOOK_URL`) posts to. It verifies each Standard Webhooks signature, prints one line per event, and lists
 * what it received at `GET /events`, so a person trying the sandbox sees mail events arrive.
 */
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
  const server: RunningServer = await startHttpsServer(
    ca,
    async (req, res) => {
      if (req.method === 'GET') {
        sendJson(res, 200, { value: received });
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

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
