/**
 * A send that fails because a dependency failed (Key Vault, Entra ID, storage) is the gateway's outage, not the
 * caller's mistake: `503` naming the dependency and what the operator must fix, never the secret. The Graph SDK
 * turns an error thrown while it gets a token into a `GraphError` with status -1 and the error's name as `code`;
 * both shapes are recognised.
 */
import { GraphError } from '@microsoft/microsoft-graph-client';
import { explainStorageError, storageUnavailableProblem } from '../platform/storage/storageErrors';
import { entraReason, explainEntraError } from '../identity/entraErrors';
import type { GatewayConfig } from '../platform/config';
import { HttpProblem } from '../platform/problems/httpProblem';
import { problem } from '../platform/problems/problem';
import type { ProblemSlug } from '../platform/problems/problemCatalogue';

/** Seconds a caller should wait before retrying a send that failed on a dependency. */
const DEPENDENCY_RETRY_AFTER_SECONDS = 30;

/** Error names `@azure/identity` gives a failed token request. */
const ENTRA_ERRORS = new Set(['AuthenticationError', 'CredentialUnavailableError', 'AggregateAuthenticationError']);

/** The failure behind `err` when it happened in this process (not an answer from Graph). */
function localFailure(err: unknown): { name: string; message: string } | undefined {
  if (err instanceof GraphError) {
    return err.statusCode === -1 && err.code ? { name: err.code, message: err.message } : undefined;
  }
  return err instanceof Error ? { name: err.name, message: err.message } : undefined;
}

function dependencyFailure(dependency: string, slug: ProblemSlug, title: string, detail: string): HttpProblem {
  return new HttpProblem(problem(503, slug, title, `${detail} Nothing was sent.`, { dependency }), {
    retryAfterSeconds: DEPENDENCY_RETRY_AFTER_SECONDS,
  });
}

/** The 503 for a Key Vault or Entra ID failure while getting the app's token, or undefined for anything else. */
export function credentialDependencyProblem(err: unknown): HttpProblem | undefined {
  const failure = localFailure(err);
  if (!failure) return undefined;
  if (failure.name === 'KeyVaultAccessError') {
    // The message already names the role or setting to fix (keyVaultCredentialSource.ts) and never the value.
    return dependencyFailure(
      'Key Vault',
      'key-vault-unavailable',
      'The gateway cannot read its credential from Key Vault',
      failure.message,
    );
  }
  if (failure.name === 'CredentialFormatError') {
    return dependencyFailure(
      'Key Vault',
      'credential-invalid',
      'The credential in Key Vault cannot be used',
      `${failure.message} (the Key Vault object named by APP_CREDENTIAL_NAME)`,
    );
  }
  const entra = explainEntraError(failure.message);
  if (entra || ENTRA_ERRORS.has(failure.name) || /AADSTS\d+/.test(failure.message)) {
    return dependencyFailure(
      'Entra ID',
      'entra-token-failed',
      'Entra ID did not issue the gateway a token',
      entra
        ? `Entra ID refused the app's token request (${entraReason(failure.message)}). Fix: ${entra.fix}.`
        : `Entra ID could not issue a token: ${entraReason(failure.message)}. Check /api/diagnostics.`,
    );
  }
  return undefined;
}

/**
 * The 503 for a storage failure, naming the role, "storage unreachable" or the deadline it missed; `resource` is the
 * table named when the error does not say which call failed.
 */
export function storageDependencyProblem(err: unknown, resource: string, config: GatewayConfig): HttpProblem {
  const tagged = storageUnavailableProblem(err, config, 'Nothing was sent.');
  if (tagged) return tagged;
  return dependencyFailure(
    'storage',
    'storage-unavailable',
    'The gateway cannot use its storage account',
    explainStorageError(err, 'table', resource, config),
  );
}
