/**
 * The App Service managed-identity endpoint Azure Functions gives an app (`IDENTITY_ENDPOINT` +
 * `IDENTITY_HEADER`, API version 2019-08-01). Like the real one it is plain HTTP on loopback, requires the secret
 * header and answers `{ access_token, expires_on, resource, token_type, client_id }`.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EntraEmulator } from './entra';
import { sendJson, startHttpServer, type RunningServer } from './httpServer';
import type { EmulatedTenant, ManagedIdentityRecord } from './tenant';

/** A token request the endpoint saw. */
export interface ManagedIdentityRequestRecord {
  resource: string;
  clientId?: string;
  status: number;
}

/** The running managed-identity endpoint. */
export class ManagedIdentityEndpoint {
  /** The secret App Service puts in `IDENTITY_HEADER`. */
  readonly identityHeader = randomBytes(16).toString('hex');
  /** Every token request, in order. */
  readonly requests: ManagedIdentityRequestRecord[] = [];
  /** The identity used when a request names none (the system-assigned one), if any. */
  systemAssigned?: ManagedIdentityRecord;

  private server!: RunningServer;

  private constructor(
    private readonly tenant: EmulatedTenant,
    private readonly entra: EntraEmulator,
  ) {}

  /** Starts the endpoint on a free loopback port. */
  static async start(tenant: EmulatedTenant, entra: EntraEmulator): Promise<ManagedIdentityEndpoint> {
    const endpoint = new ManagedIdentityEndpoint(tenant, entra);
    endpoint.server = await startHttpServer((req, res) => endpoint.handle(req, res));
    return endpoint;
  }

  /** Value for `IDENTITY_ENDPOINT`. */
  get url(): string {
    return `${this.server.url}/msi/token`;
  }

  /** The environment variables App Service sets for the app. */
  environment(): Record<string, string> {
    return { IDENTITY_ENDPOINT: this.url, IDENTITY_HEADER: this.identityHeader };
  }

  /** Stops the server. */
  close(): Promise<void> {
    return this.server.close();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.server.url);
    const resource = url.searchParams.get('resource') ?? '';
    const clientId = url.searchParams.get('client_id') ?? undefined;
    const record: ManagedIdentityRequestRecord = { resource, clientId, status: 200 };
    this.requests.push(record);
    const fail = (status: number, message: string) => {
      record.status = status;
      sendJson(res, status, { statusCode: status, message, correlationId: randomBytes(16).toString('hex') });
    };
    if (req.method !== 'GET' || url.pathname !== '/msi/token') return fail(404, 'Not found');
    if (req.headers['x-identity-header'] !== this.identityHeader) {
      return fail(401, 'The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.');
    }
    if (url.searchParams.get('api-version') !== '2019-08-01') {
      return fail(400, 'api-version 2019-08-01 is required.');
    }
    const objectId = url.searchParams.get('object_id') ?? url.searchParams.get('principal_id');
    const identity = clientId
      ? this.tenant.identities.get(clientId)
      : objectId
        ? [...this.tenant.identities.values()].find((i) => i.principalId === objectId)
        : this.systemAssigned;
    if (!identity) {
      return fail(400, 'No managed identity found for the specified ClientId/ResourceId/PrincipalId.');
    }
    const audience = resource.replace(/\/\.default$/, '').replace(/\/$/, '');
    if (!this.entra.findResource(audience)) {
      return fail(400, `AADSTS500011: The resource principal named ${resource} was not found in the tenant.`);
    }
    const issued = this.entra.issueToken(audience, {
      appId: identity.clientId,
      objectId: identity.principalId,
      acr: '2',
      mirid: `/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${identity.clientId}`,
    });
    sendJson(res, 200, {
      access_token: issued.token,
      expires_on: String(Math.floor(Date.now() / 1000) + issued.expiresIn),
      resource,
      token_type: 'Bearer',
      client_id: identity.clientId,
    });
  }
}
