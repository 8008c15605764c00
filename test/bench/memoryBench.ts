/**
 * Memory of one large send, measured in the gateway's process alone: the functions host runs as its own child
 * process (as Azure runs a worker), the emulators stay in the benchmark's process, and the host's resident memory is
 * read from `/proc/<pid>/status`: `VmRSS` before and after, and the kernel's own peak `VmHWM` (reset through
 * `/proc/<pid>/clear_refs` before each phase, so nothing between samples is missed), with 10 ms samples of `VmRSS` as
 * a cross-check. Before and after each phase the host collects garbage on request (`hostMemoryProbe.ts`), so that
 * the figures compare memory the process still holds rather than when V8 last collected.
 *
 * Each send is measured in its two phases: the accept (`POST /api/mail/send` until its 202: the request read,
 * validated and stored in the outbox) and the processing (the host's queue trigger reads the stored request and
 * sends it through Graph's draft + upload session, until `GET /api/mail/{id}` says `sent`). The send carries a
 * `sendAt` a few seconds ahead, so that its queue message stays hidden until the accept's figures are settled.
 *
 * Beside each send, in the same run, the host's floor: the same body with `content-type: text/plain`, which the
 * gateway refuses with 415 without reading it. It is what the host costs for a body it does not read.
 */
import { randomBytes } from 'node:crypto';
import { startAzurite } from '../emulators/azurite';
import type { FunctionsHostProcess } from '../support/functionsHost';
import { appRoot } from '../../shared/platform/packageInfo';
import type { BenchContext } from './benchContext';
import { startProbedHost, type MemorySample } from './hostMemory';

/** Figures of the memory benchmark. */
export interface MemoryBenchResult {
  attachmentBytes: number;
  /** Bytes of the `POST /api/mail/send` body (the attachment's base64 inside JSON). */
  bodyBytes: number;
  /** How the peak was measured: the kernel's VmHWM after a reset, or only the 10 ms samples. */
  peakSource: 'VmHWM' | 'samples';
  /**
   * Each measured send, in its accept and processing phases, and before it the host's floor for the same body
   * (refused with 415 unread).
   */
  rounds: { floor: MemorySample; accept: MemorySample; processing: MemorySample }[];
}

const SENDS = 3;
const ATTACHMENT_BYTES = 25 * 1024 * 1024;
/** How far ahead the measured sends are scheduled: long enough for the accept's figures to settle first. */
const SEND_AT_AHEAD_MS = 5_000;
/** Longest the processing of one send may take before the benchmark gives up. */
const PROCESSING_TIMEOUT_MS = 120_000;

/** Runs one 25 MB-attachment send three times (after a warm-up send) and measures the host's memory. */
export async function runMemoryBench(ctx: BenchContext, caDir: string): Promise<MemoryBenchResult> {
  // startFunctionsHost gives the host the test CA through this variable, as under `npm test`.
  process.env.TEST_CA_DIR ??= caDir;
  const azurite = await startAzurite({ projectRoot: appRoot() });
  let host: FunctionsHostProcess | undefined;
  try {
    const probed = await startProbedHost({ ...ctx.cloud.settings(), AzureWebJobsStorage: azurite.connectionString });
    host = probed.host;

    const mailbox = `billing@${ctx.cloud.tenant.domain}`;
    const recipient = `someone@${ctx.cloud.tenant.domain}`;
    const body = (attachmentBytes: number, sendAt?: string): string =>
      JSON.stringify({
        ...(sendAt ? { sendAt } : {}),
        from: mailbox,
        to: [recipient],
        subject: 'memory benchmark',
        text: 'benchmark',
        attachments: [
          {
            name: 'big.bin',
            contentType: 'application/octet-stream',
            contentBase64: randomBytes(attachmentBytes).toString('base64'),
          },
        ],
      });
    const target = host;
    const headers = (contentType?: string): Record<string, string> => ({
      'x-functions-key': target.functionKey,
      ...(contentType ? { 'content-type': contentType } : {}),
    });
    const send = async (json: string, contentType = 'application/json'): Promise<{ status: number; id?: string }> => {
      const res = await fetch(`${target.url}/api/mail/send`, {
        method: 'POST',
        headers: headers(contentType),
        body: json,
      });
      const answer = (await res.json().catch(() => ({}))) as { id?: string };
      return { status: res.status, id: answer.id };
    };
    /** Polls the mail's status until it is sent or failed; the last status read. */
    const processed = async (id: string): Promise<{ status: number; mailStatus: string }> => {
      const deadline = Date.now() + PROCESSING_TIMEOUT_MS;
      for (;;) {
        const res = await fetch(`${target.url}/api/mail/${id}`, { headers: headers() });
        const { status: mailStatus } = (await res.json()) as { status: string };
        if (mailStatus === 'sent' || mailStatus === 'failed') return { status: res.status, mailStatus };
        if (Date.now() > deadline) throw new Error(`mail ${id} is still ${mailStatus}:\n${target.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    // Warm-up through the same path (draft + upload session), so that loading code, the token and connections
    // are not counted as the send's memory.
    ctx.cloud.graph.reset();
    const warmUp = await send(body(4 * 1024 * 1024));
    if (warmUp.status !== 202 || !warmUp.id)
      throw new Error(`the warm-up send answered ${warmUp.status}:\n${host.output()}`);
    const warmedUp = await processed(warmUp.id);
    if (warmedUp.mailStatus !== 'sent')
      throw new Error(`the warm-up send ended ${warmedUp.mailStatus}:\n${host.output()}`);

    const measure = probed.measure;
    const bodyBytes = Buffer.byteLength(body(ATTACHMENT_BYTES, new Date().toISOString()));
    const rounds: MemoryBenchResult['rounds'] = [];
    for (let i = 0; i < SENDS; i++) {
      ctx.cloud.graph.reset();
      const refused = body(ATTACHMENT_BYTES);
      const [floor] = await measure(async () => ({ status: (await send(refused, 'text/plain')).status, value: 0 }));
      const json = body(ATTACHMENT_BYTES, new Date(Date.now() + SEND_AT_AHEAD_MS).toISOString());
      const [accept, id] = await measure(async () => {
        const answer = await send(json);
        return { status: answer.status, value: answer.id };
      });
      if (accept.status !== 202 || !id) throw new Error(`the send answered ${accept.status}:\n${target.output()}`);
      const [processing, mailStatus] = await measure(async () => {
        const outcome = await processed(id);
        return { status: outcome.status, value: outcome.mailStatus };
      });
      if (mailStatus !== 'sent') throw new Error(`mail ${id} ended ${mailStatus}:\n${target.output()}`);
      rounds.push({ floor, accept, processing });
    }
    return { attachmentBytes: ATTACHMENT_BYTES, bodyBytes, peakSource: probed.peakSource(), rounds };
  } finally {
    await host?.stop();
    await azurite.stop();
  }
}
