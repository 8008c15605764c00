/**
 * Token benchmark: what 1,000 Graph calls' worth of tokens cost in Entra ID token requests and Key Vault reads,
 * and the time per token, for the gateway's token helper and, side by side in the same run, for the way the
 * usual samples do it (read the secret and build a new credential for every call).
 */
import { AppCredential } from '../../shared/identity/appCredential';
import { KeyVaultCredentialSource } from '../../shared/identity/keyVaultCredentialSource';
import { naiveToken, type BenchContext } from './benchContext';

/** Figures for one client. */
export interface TokenBenchResult {
  name: string;
  calls: number;
  tokenRequests: number;
  keyVaultReads: number;
  msPerToken: number;
}

async function measure(
  ctx: BenchContext,
  name: string,
  calls: number,
  getToken: () => Promise<unknown>,
): Promise<TokenBenchResult> {
  const tokensBefore = ctx.cloud.entra.tokenRequests.length;
  const vaultBefore = ctx.cloud.keyVault.requests.filter((r) => r.status === 200).length;
  const started = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await getToken();
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  return {
    name,
    calls,
    tokenRequests: ctx.cloud.entra.tokenRequests.length - tokensBefore,
    keyVaultReads: ctx.cloud.keyVault.requests.filter((r) => r.status === 200).length - vaultBefore,
    msPerToken: elapsedMs / calls,
  };
}

/** Runs the token benchmark: 1,000 tokens through the helper, 100 the naive way (scaled to 1,000). */
export async function runTokenBench(ctx: BenchContext): Promise<TokenBenchResult[]> {
  const scope = ctx.config.endpoints.graphScope;
  const helper = new AppCredential(ctx.config);
  const gateway = await measure(ctx, 'token helper', 1000, () => helper.getToken(scope));

  const source = new KeyVaultCredentialSource(ctx.config);
  const naiveCalls = 100;
  const naive = await measure(ctx, 'naive (per call: read Key Vault, new credential)', naiveCalls, async () => {
    return naiveToken(ctx, source);
  });
  const scale = 1000 / naiveCalls;
  return [
    gateway,
    { ...naive, calls: 1000, tokenRequests: naive.tokenRequests * scale, keyVaultReads: naive.keyVaultReads * scale },
  ];
}
