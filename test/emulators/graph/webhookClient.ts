/**
 * Graph's outgoing HTTP client for webhooks: one POST per call, no keep-alive (each notification is its own
 * connection, so a test's receiver sees every attempt), a hard timeout, and nothing left running after
 * {@link WebhookClient.close}.
 */
import type { ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';

/** The outcome of one POST; `error` instead of `status` when no answer came (refused, reset, timeout). */
export interface WebhookOutcome {
  status?: number;
  contentType?: string;
  /** The answer's body as text (capped; receivers have nothing large to say). */
  text: string;
  error?: string;
  durationMs: number;
}

/** A POST to make. */
export interface WebhookPost {
  url: string;
  contentType: string;
  body?: string;
  timeoutMs: number;
}

const MAX_ANSWER_BYTES = 64 * 1024;

/** Sends webhook POSTs and can cut all of them at once. */
export class WebhookClient {
  private readonly active = new Set<ClientRequest>();
  private closed = false;
  private readonly trusted: string[] | undefined;

  /**
   * @param extraCaPem - a CA to trust besides the public ones, as real Graph trusts public CAs: the test CA that
   * issues the functions host's certificate (the process may not have it in NODE_EXTRA_CA_CERTS, e.g. the sandbox).
   */
  constructor(extraCaPem?: string) {
    this.trusted = extraCaPem ? [...rootCertificates, extraCaPem] : undefined;
  }

  /** POSTs and resolves with what happened; never rejects. */
  post(post: WebhookPost): Promise<WebhookOutcome> {
    const startedAt = Date.now();
    const done = (outcome: Omit<WebhookOutcome, 'durationMs'>): WebhookOutcome => ({
      ...outcome,
      durationMs: Date.now() - startedAt,
    });
    if (this.closed) return Promise.resolve(done({ text: '', error: 'emulator closed' }));
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: Omit<WebhookOutcome, 'durationMs'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.active.delete(req);
        resolve(done(outcome));
      };
      const body = post.body === undefined ? undefined : Buffer.from(post.body, 'utf8');
      const req = httpsRequest(post.url, {
        method: 'POST',
        agent: false,
        ...(this.trusted ? { ca: this.trusted } : {}),
        headers: { 'content-type': post.contentType, 'content-length': String(body?.length ?? 0) },
      });
      this.active.add(req);
      const timer = setTimeout(() => {
        settle({ text: '', error: `no answer within ${post.timeoutMs} ms` });
        req.destroy();
      }, post.timeoutMs);
      req.on('error', (err) => settle({ text: '', error: err.message }));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_ANSWER_BYTES) chunks.push(chunk);
        });
        res.on('error', (err) => settle({ text: '', error: err.message }));
        res.on('end', () =>
          settle({
            status: res.statusCode,
            contentType: res.headers['content-type'],
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      });
      req.end(body);
    });
  }

  /** Cuts every POST in flight (they resolve with an error) and refuses new ones. */
  close(): void {
    this.closed = true;
    for (const req of this.active) req.destroy(new Error('emulator closed'));
    this.active.clear();
  }
}
