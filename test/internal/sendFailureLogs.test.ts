/**
 * What the send handler logs when something unexpected happens: the message and stack, never a token, a secret
 * or mail content; a client that goes away mid-body is an info line. The outbox is a stand-in here (a unit test);
 * test/public/sendFailureLogs.test.ts checks the Graph failure lines through the real host.
 */
import { HttpRequest, InvocationContext } from '@azure/functions';
import { handleSendMail, type SendMailDependencies } from '../../shared/outbox/accept/sendMailHandler';
import { loadConfig } from '../../shared/platform/config';
import { UNIT_SETTINGS } from '../support/unitSettings';

const config = loadConfig({
  ...UNIT_SETTINGS,
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  GRAPH_PERMISSION_CHECK: 'off',
});

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJlc2lnbmF0dXJl';

function capture(): { context: InvocationContext; lines: { level: string; text: string }[] } {
  const lines: { level: string; text: string }[] = [];
  const context = new InvocationContext({
    logHandler: (level, ...args) => lines.push({ level, text: args.map(String).join(' ') }),
  });
  return { context, lines };
}

function deps(accept: () => Promise<never>): SendMailDependencies {
  return {
    config,
    credential: {} as SendMailDependencies['credential'],
    // Staging does nothing here: the fake accept decides what storing does.
    outbox: {
      accept,
      stageAttachments: () => ({
        open: () => undefined,
        flush: () => Promise.resolve(),
        discard: () => Promise.resolve(),
      }),
    } as unknown as SendMailDependencies['outbox'],
  };
}

const body = {
  from: 'alerts@contoso.com',
  to: ['someone@contoso.com'],
  subject: 'secret subject',
  text: 'secret body',
};

describe('send failure logs', () => {
  it('log an unexpected failure with its message and stack, without token, secret or mail content', async () => {
    const { context, lines } = capture();
    const failure = new TypeError(
      `cannot read 'id' of undefined (Authorization: Bearer ${JWT}; client_secret=s3cr3t-value)`,
    );
    const answer = await handleSendMail(
      new HttpRequest({
        method: 'POST',
        url: 'http://localhost/api/mail/send',
        headers: { 'content-type': 'application/json' },
        body: { string: JSON.stringify(body) },
      }),
      context,
      deps(() => Promise.reject(failure)),
    );

    expect(answer.status).toBe(500);
    const errors = lines.filter((l) => l.level === 'error').map((l) => l.text);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /send failed unexpectedly \(incident [0-9a-f-]{36}\) for alerts@contoso\.com: TypeError: cannot read 'id' of undefined/,
    );
    expect(errors[0]).toMatch(/\n\s+at .*sendFailureLogs\.test\.ts:\d+/); // the stack
    const all = lines.map((l) => l.text).join('\n');
    expect(all).not.toContain(JWT);
    expect(all).not.toContain('s3cr3t-value');
    expect(all).not.toContain('secret subject');
    expect(all).not.toContain('secret body');
    expect(typeof answer.body === 'string' ? answer.body : '').not.toMatch(/TypeError|\bat /);
    expect(typeof answer.body).toBe('string');
  });

  it('log a client that disconnects mid-body as one info line, with no error and no stack', async () => {
    const { context, lines } = capture();
    const aborted = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    const request = {
      method: 'POST',
      url: 'http://localhost/api/mail/send',
      headers: new Headers({ 'content-type': 'application/json', 'content-length': '1000' }),
      body: new ReadableStream<Uint8Array>({ pull: (controller) => controller.error(aborted) }),
    } as unknown as HttpRequest;

    const answer = await handleSendMail(
      request,
      context,
      deps(() => Promise.reject(new Error('not reached'))),
    );

    expect(answer.status).toBe(400);
    expect(lines.map((l) => l.level)).toEqual(['information']);
    expect(lines[0].text).toMatch(/^send abandoned: the client disconnected before the request body arrived/);
    expect(lines[0].text).not.toMatch(/\bat /);
  });
});
