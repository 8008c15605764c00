/** What every benchmark gets: a local cloud and the gateway config pointing at it. */
import { ClientCertificateCredential, type AccessToken } from '@azure/identity';
import type { GatewayConfig } from '../../shared/platform/config';
import type { KeyVaultCredentialSource } from '../../shared/identity/keyVaultCredentialSource';
import type { LocalCloud } from '../emulators/localCloud';

/** Shared state of one benchmark run. */
export interface BenchContext {
  cloud: LocalCloud;
  config: GatewayConfig;
}

/**
 * A token the way the usual samples get one, the benchmarks' baseline: read the credential from Key Vault and
 * build a new credential (so a new token) for every call.
 */
export async function naiveToken(ctx: BenchContext, source: KeyVaultCredentialSource): Promise<AccessToken> {
  const material = await source.read();
  if (material.kind !== 'certificate') throw new Error('the benchmarks expect a certificate credential');
  const credential = new ClientCertificateCredential(
    ctx.config.tenantId,
    ctx.config.clientId,
    { certificate: material.pem },
    {
      authorityHost: ctx.config.endpoints.authorityHost,
      disableInstanceDiscovery: true,
    },
  );
  return credential.getToken(ctx.config.endpoints.graphScope);
}
