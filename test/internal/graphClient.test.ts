import { GraphError } from '@microsoft/microsoft-graph-client';
import { AppCredential } from '../../shared/identity/appCredential';
import { createGraphClient } from '../../shared/graph/graphClient';
import { GRAPH_APP_ROLES } from '../emulators/tenant';
import { startTestCloud, type TestCloud } from '../support/testEnv';

let env: TestCloud;
beforeAll(async () => {
  env = await startTestCloud({ graph: { latencyMs: { min: 0, max: 0 } } });
});
afterAll(() => env.close());
afterEach(() => {
  env.cloud.graph.clearFaults();
  env.cloud.app.graphRoles = new Set(GRAPH_APP_ROLES);
});

const newClient = (retry = {}) => createGraphClient(env.config, new AppCredential(env.config), retry);

describe('Graph client factory', () => {
  it("calls the configured Graph with the helper's token and a fresh client-request-id per request", async () => {
    const client = newClient();
    const before = env.cloud.graph.requests.length;
    const user = (await client.api('/users/alerts@contoso.com').get()) as { mail: string };
    await client.api('/users/alerts@contoso.com/mailFolders/inbox').get();

    expect(user.mail).toBe('alerts@contoso.com');
    const seen = env.cloud.graph.requests.slice(before);
    expect(seen.map((r) => r.status)).toEqual([200, 200]);
    expect(seen.every((r) => r.hadAuthorization && r.appId === env.cloud.app.clientId)).toBe(true);
    const ids = seen.map((r) => r.clientRequestId);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(ids).size).toBe(2);
  });

  it("asks the credential for the cloud's Graph scope, and sends nothing when it gives no token", async () => {
    const asked: unknown[] = [];
    const empty = {
      getToken: (scopes: string | string[]) => {
        asked.push(scopes);
        return Promise.resolve(null);
      },
    };
    const before = env.cloud.graph.requests.length;
    await expect(createGraphClient(env.config, empty).api('/users/alerts@contoso.com').get()).rejects.toThrow(
      `the credential returned no token for ${env.config.endpoints.graphScope}`,
    );
    expect(asked).toEqual([env.config.endpoints.graphScope]);
    expect(env.cloud.graph.requests.length).toBe(before);
  });

  it('honours a fractional Retry-After on 429 and then succeeds', async () => {
    const client = newClient();
    env.cloud.graph.injectFaults({ status: 429, retryAfter: '1.5', times: 1, mailbox: 'alerts@contoso.com' });
    const before = env.cloud.graph.requests.length;
    await expect(client.api('/users/alerts@contoso.com/mailFolders/inbox').get()).resolves.toMatchObject({
      displayName: 'Inbox',
    });

    const seen = env.cloud.graph.requests.slice(before);
    expect(seen.map((r) => r.status)).toEqual([429, 200]);
    // The retry came no sooner than Retry-After allowed.
    expect(seen[1].startedAt.getTime() - seen[0].startedAt.getTime()).toBeGreaterThanOrEqual(1500);
  });

  it('does not wait longer in total than its policy allows', async () => {
    const client = newClient({ maxTotalWaitSeconds: 5 });
    env.cloud.graph.injectFaults({ status: 503, retryAfter: '120', times: Infinity, mailbox: 'alerts@contoso.com' });
    const error = await client
      .api('/users/alerts@contoso.com/mailFolders/inbox')
      .get()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(GraphError);
    expect((error as GraphError).statusCode).toBe(503);
  });

  it("surfaces Graph's 401 for a token without roles, with its code and request id", async () => {
    env.cloud.app.graphRoles = new Set();
    const error = await newClient()
      .api('/users/alerts@contoso.com/messages')
      .get()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(GraphError);
    expect(error).toMatchObject({
      statusCode: 401,
      code: 'NoPermissionsInAccessToken',
      message: 'The token contains no permissions, or permissions can not be understood.',
    });
    expect((error as GraphError).requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});
