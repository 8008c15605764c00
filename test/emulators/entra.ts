/**
 * Entra ID emulator: the OpenID configuration document MSAL reads and the v2.0 token endpoint for the client
 * credentials grant, with a client secret or a certificate assertion checked for real (signature against the
 * registered certificate, `aud`, `iss`/`sub`, lifetime, `x5t`/`x5t#S256`, `jti` replay). Errors have Entra's
 * shape: `error`, `error_description` starting with an AADSTS code, `error_codes`, trace and correlation ids.
 */
import { createPublicKey, randomUUID, timingSafeEqual, verify as verifySignature, constants } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, sendJson, startHttpsServer, type RunningServer } from './httpServer';
import type { AppRegistration, EmulatedTenant } from './tenant';
import type { PemPair } from './testCa';
import { decodeJwtPart, type AccessTokenClaims, type TokenIssuer } from './tokenIssuer';

/** Resources (token audiences) the emulated tenant knows, with whether Graph app roles apply. */
export interface KnownResource {
  /** Audience, e.g. `https://graph.microsoft.com`. */
  audience: string;
  /** True when the token's `roles` are the app's consented Graph roles. */
  graph: boolean;
}

/** Options for {@link EntraEmulator.start}. */
export interface EntraEmulatorOptions {
  tenant: EmulatedTenant;
  issuer: TokenIssuer;
  ca: PemPair;
  /** Resources tokens may be requested for; default Graph (global) and Key Vault. */
  resources?: KnownResource[];
  /** Token lifetime in seconds; default random between 60 and 90 minutes, as Entra does. */
  tokenLifetimeSeconds?: () => number;
}

/** A token request as the emulator saw it (never the secret or assertion). */
export interface TokenRequestRecord {
  clientId: string;
  scope: string;
  credentialType: 'secret' | 'assertion' | 'none';
  status: number;
  errorCode?: number;
}

/** Thrown inside the token endpoint to produce an Entra error response. */
class EntraError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly code: number,
    readonly description: string,
  ) {
    super(description);
  }
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const RESERVED_TENANTS = new Set(['common', 'organizations', 'consumers']);

/** The running Entra ID emulator. */
export class EntraEmulator {
  /** Every token request, in order. */
  readonly tokenRequests: TokenRequestRecord[] = [];
  private readonly seenJti = new Set<string>();
  private readonly resources: KnownResource[];

  private server!: RunningServer;

  private constructor(private readonly options: EntraEmulatorOptions) {
    this.resources = options.resources ?? [
      { audience: 'https://graph.microsoft.com', graph: true },
      { audience: 'https://vault.azure.net', graph: false },
    ];
  }

  /** Starts the emulator on a free loopback port. */
  static async start(options: EntraEmulatorOptions): Promise<EntraEmulator> {
    const emulator = new EntraEmulator(options);
    emulator.server = await startHttpsServer(options.ca, (req, res) => emulator.handle(req, res));
    return emulator;
  }

  /** The authority host, e.g. `https://127.0.0.1:40123`. */
  get url(): string {
    return this.server.url;
  }

  /** Stops the server. */
  close(): Promise<void> {
    return this.server.close();
  }

  /** Issues an access token for `resource` on behalf of `appId` (also used by the managed-identity endpoint). */
  issueToken(
    resource: string,
    subject: { appId: string; objectId: string; acr: AccessTokenClaims['appidacr']; roles?: string[]; mirid?: string },
  ): { token: string; expiresIn: number } {
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = this.options.tokenLifetimeSeconds?.() ?? 3600 + Math.floor(Math.random() * 1800);
    const claims: AccessTokenClaims = {
      aud: resource,
      iss: `https://sts.windows.net/${this.options.tenant.tenantId}/`,
      iat: now,
      nbf: now,
      exp: now + expiresIn,
      tid: this.options.tenant.tenantId,
      appid: subject.appId,
      appidacr: subject.acr,
      idtyp: 'app',
      oid: subject.objectId,
      sub: subject.objectId,
      ver: '1.0',
      uti: randomUUID().replace(/-/g, '').slice(0, 22),
      ...(subject.roles && subject.roles.length > 0 ? { roles: subject.roles } : {}),
      ...(subject.mirid ? { xms_mirid: subject.mirid } : {}),
    };
    return { token: this.options.issuer.sign(claims), expiresIn };
  }

  /** Looks up a resource by the audience a scope names. */
  findResource(audience: string): KnownResource | undefined {
    return this.resources.find((r) => r.audience === audience.replace(/\/$/, ''));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const segments = url.pathname.split('/').filter(Boolean);
    const tenantName = segments[0] ?? '';
    const rest = segments.slice(1).join('/');
    if (
      req.method === 'GET' &&
      (rest === 'v2.0/.well-known/openid-configuration' || rest === '.well-known/openid-configuration')
    ) {
      return this.openIdConfiguration(res, tenantName, rest.startsWith('v2.0'));
    }
    if (req.method === 'GET' && rest === 'discovery/v2.0/keys') {
      return sendJson(res, 200, this.options.issuer.jwks());
    }
    if (rest === 'oauth2/v2.0/token') {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'invalid_request' });
      return this.token(req, res, tenantName);
    }
    sendJson(res, 404, { error: 'not_found', error_description: `No route for ${url.pathname}` });
  }

  private openIdConfiguration(res: ServerResponse, tenantName: string, v2: boolean): void {
    if (!this.options.tenant.matches(tenantName) && !RESERVED_TENANTS.has(tenantName.toLowerCase())) {
      return this.sendError(
        res,
        new EntraError(
          400,
          'invalid_tenant',
          90002,
          `AADSTS90002: Tenant '${tenantName}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
        ),
      );
    }
    const tid = this.options.tenant.tenantId;
    const base = `${this.url}/${tenantName}`;
    sendJson(res, 200, {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${this.url}/${tid}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: v2 ? `${this.url}/${tid}/v2.0` : `https://sts.windows.net/${tid}/`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${this.url}/oidc/userinfo`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid'],
      kerberos_endpoint: `${base}/kerberos`,
      tenant_region_scope: 'EU',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
    });
  }

  private async token(req: IncomingMessage, res: ServerResponse, tenantName: string): Promise<void> {
    const form = new URLSearchParams((await readBody(req, 1024 * 1024)).toString('utf8'));
    const clientId = form.get('client_id') ?? '';
    const scope = form.get('scope') ?? '';
    const credentialType = form.has('client_assertion') ? 'assertion' : form.has('client_secret') ? 'secret' : 'none';
    const record: TokenRequestRecord = { clientId, scope, credentialType, status: 200 };
    this.tokenRequests.push(record);
    try {
      const tokenEndpoint = `${this.url}/${tenantName}/oauth2/v2.0/token`;
      const { app, resource, acr } = this.authenticate(form, tenantName, tokenEndpoint);
      const issued = this.issueToken(resource.audience, {
        appId: app.clientId,
        objectId: app.clientId,
        acr,
        roles: resource.graph ? [...app.graphRoles] : undefined,
      });
      sendJson(res, 200, {
        token_type: 'Bearer',
        expires_in: issued.expiresIn,
        ext_expires_in: issued.expiresIn,
        access_token: issued.token,
      });
    } catch (err) {
      if (!(err instanceof EntraError)) throw err;
      record.status = err.status;
      record.errorCode = err.code;
      this.sendError(res, err);
    }
  }

  private authenticate(
    form: URLSearchParams,
    tenantName: string,
    tokenEndpoint: string,
  ): { app: AppRegistration; resource: KnownResource; acr: '1' | '2' } {
    const tenant = this.options.tenant;
    if (RESERVED_TENANTS.has(tenantName.toLowerCase())) {
      throw new EntraError(
        400,
        'invalid_request',
        50059,
        'AADSTS50059: No tenant-identifying information found in either the request or implied by any provided credentials.',
      );
    }
    if (!tenant.matches(tenantName)) {
      throw new EntraError(
        400,
        'invalid_request',
        90002,
        `AADSTS90002: Tenant '${tenantName}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
      );
    }
    const grantType = form.get('grant_type');
    if (grantType !== 'client_credentials') {
      throw new EntraError(
        400,
        'unsupported_grant_type',
        70003,
        `AADSTS70003: The app requested an unsupported grant type '${grantType ?? ''}'.`,
      );
    }
    const clientId = form.get('client_id') ?? '';
    const app = tenant.apps.get(clientId);
    if (!app) {
      throw new EntraError(
        400,
        'unauthorized_client',
        700016,
        `AADSTS700016: Application with identifier '${clientId}' was not found in the directory '${tenantName}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`,
      );
    }
    const scope = form.get('scope') ?? '';
    if (!scope.endsWith('/.default') || scope.includes(' ')) {
      throw new EntraError(
        400,
        'invalid_scope',
        1002012,
        `AADSTS1002012: The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    }
    const resource = this.findResource(scope.slice(0, -'/.default'.length));
    if (!resource) {
      throw new EntraError(
        400,
        'invalid_resource',
        500011,
        `AADSTS500011: The resource principal named ${scope.slice(0, -'/.default'.length)} was not found in the tenant named ${tenantName}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`,
      );
    }
    const secret = form.get('client_secret');
    const assertion = form.get('client_assertion');
    if (assertion !== null) {
      if (form.get('client_assertion_type') !== ASSERTION_TYPE) {
        throw new EntraError(
          400,
          'invalid_request',
          900144,
          `AADSTS900144: The request body must contain the following parameter: 'client_assertion_type' with value '${ASSERTION_TYPE}'.`,
        );
      }
      this.checkAssertion(app, assertion, tokenEndpoint);
      return { app, resource, acr: '2' };
    }
    if (secret !== null) {
      this.checkSecret(app, secret);
      return { app, resource, acr: '1' };
    }
    throw new EntraError(
      401,
      'invalid_client',
      7000218,
      "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    );
  }

  private checkSecret(app: AppRegistration, secret: string): void {
    const given = Buffer.from(secret);
    const match = app.secrets.find((s) => {
      const stored = Buffer.from(s.value);
      return stored.length === given.length && timingSafeEqual(stored, given);
    });
    if (!match) {
      throw new EntraError(
        401,
        'invalid_client',
        7000215,
        `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`,
      );
    }
    if (match.expiresOn && match.expiresOn.getTime() < Date.now()) {
      throw new EntraError(
        401,
        'invalid_client',
        7000222,
        `AADSTS7000222: The provided client secret keys for app '${app.clientId}' are expired. Visit the Azure portal to create new keys for your app.`,
      );
    }
  }

  private checkAssertion(app: AppRegistration, assertion: string, tokenEndpoint: string): void {
    const invalid = (code: number, text: string) =>
      new EntraError(401, 'invalid_client', code, `AADSTS${code}: ${text}`);
    const parts = assertion.split('.');
    const header = decodeJwtPart(parts[0]);
    const claims = decodeJwtPart(parts[1]);
    if (parts.length !== 3 || !header || !claims) {
      throw invalid(50027, 'JWT token is invalid or malformed.');
    }
    const x5tS256 = header['x5t#S256'];
    const x5t = header.x5t;
    const certificate = app.certificates.find((c) =>
      typeof x5tS256 === 'string' ? c.sha256 === x5tS256 : c.sha1 === x5t,
    );
    if (!certificate) {
      throw invalid(
        700027,
        `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${String(x5tS256 ?? x5t)}'.]`,
      );
    }
    const key = createPublicKey(certificate.certPem);
    const data = Buffer.from(`${parts[0]}.${parts[1]}`);
    const signature = Buffer.from(parts[2], 'base64url');
    const signed =
      header.alg === 'RS256'
        ? verifySignature('RSA-SHA256', data, key, signature)
        : header.alg === 'PS256'
          ? verifySignature(
              'RSA-SHA256',
              data,
              { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
              signature,
            )
          : false;
    if (!signed) {
      throw invalid(700027, 'Client assertion failed signature validation.');
    }
    if (claims.aud !== tokenEndpoint) {
      throw invalid(
        50012,
        `Client assertion audience claim does not match Realm issuer. Expected '${tokenEndpoint}', got '${String(claims.aud)}'.`,
      );
    }
    if (claims.iss !== app.clientId || claims.sub !== app.clientId) {
      throw invalid(700021, "Client assertion application identifier doesn't match 'client_id' parameter.");
    }
    const now = Math.floor(Date.now() / 1000);
    const skew = 300;
    if (
      typeof claims.exp !== 'number' ||
      claims.exp + skew < now ||
      (typeof claims.nbf === 'number' && claims.nbf - skew > now)
    ) {
      throw invalid(700024, 'Client assertion is not within its valid time range.');
    }
    if (claims.exp - now > 600 + skew) {
      throw invalid(
        700024,
        'Client assertion contains an invalid expiration: it must not be more than 10 minutes in the future.',
      );
    }
    if (typeof claims.jti !== 'string' || claims.jti === '') {
      throw invalid(50027, "Client assertion is missing the 'jti' claim.");
    }
    if (this.seenJti.has(claims.jti)) {
      throw invalid(50012, 'Client assertion has already been used (jti replay).');
    }
    this.seenJti.add(claims.jti);
  }

  private sendError(res: ServerResponse, err: EntraError): void {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = new Date()
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, 'Z');
    sendJson(res, err.status, {
      error: err.error,
      error_description: `${err.description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_codes: [err.code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `${this.url}/error?code=${err.code}`,
    });
  }
}
