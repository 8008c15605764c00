/**
 * Bursts (issue 18): 31 mails posted at once to a mailbox that has sent nothing, through one functions host (the
 * package that ships) on its own Azurite, with the Graph emulator enforcing Exchange's 30 messages per minute. Reports
 * the time from the posts to Graph's acceptance of the 1st, 5th, 10th, 30th and 31st mail, and the most Graph
 * accepted in any 60 s (never above the rate).
 */
import { startAzurite } from '../emulators/azurite';
import { LocalCloud } from '../emulators/localCloud';
import { readTestCa } from '../emulators/testCa';
import { appRoot } from '../../shared/platform/packageInfo';
import { startFunctionsHost } from '../support/functionsHost';

/** What one burst run measured. */
export interface BurstResult {
  mails: number;
  messagesPerMinute: number;
  /** Milliseconds from the posts to Graph's acceptance of the n-th mail, by n. */
  arrivalMs: Record<number, number>;
  /** Graph acceptances in the busiest 60 s. */
  busiestMinute: number;
  throttled429: number;
}

const RATE = 30;
const MAILS = RATE + 1;

/** Runs the burst once. */
export async function runBurstBench(caDir: string): Promise<BurstResult> {
  process.env.TEST_CA_DIR ??= caDir;
  const cloud = await LocalCloud.start({
    ca: readTestCa(caDir),
    credential: 'certificate-pem',
    users: ['burst', 'warmup', 'someone'],
    graph: { latencyMs: { min: 20, max: 60 }, limits: { messagesPerMinute: RATE } },
  });
  const azurite = await startAzurite({ projectRoot: appRoot() });
  const domain = cloud.tenant.domain;
  const host = await startFunctionsHost({
    ...cloud.settings(),
    ALLOWED_SENDERS: `*@${domain}`,
    AzureWebJobsStorage: azurite.connectionString,
    MAILBOX_MESSAGES_PER_MINUTE: String(RATE),
    SANDBOX_HOST_LOG_LEVEL: 'warning',
  });
  const post = (from: string, subject: string) =>
    fetch(`${host.url}/api/mail/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-functions-key': host.functionKey, prefer: '' },
      body: JSON.stringify({ from, to: [`someone@${domain}`], subject, text: 'burst benchmark' }),
    }).then(async (res) => {
      await res.arrayBuffer();
      if (res.status !== 202) throw new Error(`accept answered ${res.status}`);
    });
  try {
    // Another mailbox warms the host up (token, tables, queues), so the burst mailbox is quiet and the host is not.
    await post(`warmup@${domain}`, 'warm-up');
    const burst = `burst@${domain}`;
    while (cloud.graph.sendsAccepted(`warmup@${domain}`) < 1) await sleep(100);

    const started = Date.now();
    await Promise.all(Array.from({ length: MAILS }, (_, i) => post(burst, `burst-${i}`)));
    const deadline = Date.now() + 180_000;
    while (cloud.graph.sendsAccepted(burst) < MAILS) {
      if (Date.now() > deadline) throw new Error(`only ${cloud.graph.sendsAccepted(burst)} of ${MAILS} reached Graph`);
      await sleep(200);
    }
    const arrivals = cloud.graph.requests
      .filter((r) => r.path.includes('/burst') && r.path.endsWith('/sendMail') && r.status === 202)
      .map((r) => r.startedAt.getTime())
      .sort((a, b) => a - b);
    const arrivalMs: Record<number, number> = {};
    for (const n of [1, 5, 10, 30, 31]) arrivalMs[n] = arrivals[n - 1] - started;
    return {
      mails: MAILS,
      messagesPerMinute: RATE,
      arrivalMs,
      busiestMinute: busiest60s(arrivals),
      throttled429: cloud.graph.requests.filter((r) => r.status === 429).length,
    };
  } finally {
    await host.stop();
    await azurite.stop();
    await cloud.close();
  }
}

/** Most timestamps (ms, ascending) within any half-open 60 s window. */
function busiest60s(times: number[]): number {
  let best = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while (times[end] - times[start] >= 60_000) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
