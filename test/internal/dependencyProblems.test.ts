import { GraphError } from '@microsoft/microsoft-graph-client';
import { CredentialFormatError, KeyVaultAccessError } from '../../shared/identity/keyVaultCredentialSource';
import { credentialDependencyProblem } from '../../shared/mail/dependencyProblems';
import { graphProblem } from '../../shared/mail/sendProblems';

/** What the Graph SDK makes of an error thrown while it gets a token or connects: status -1, the name as code. */
function wrappedBySdk(err: Error): GraphError {
  const wrapped = new GraphError(-1, '', err);
  wrapped.code = err.name;
  return wrapped;
}

describe('dependency failures as problems', () => {
  it.each([
    ['raw', (e: Error) => e],
    ['wrapped by the Graph SDK', wrappedBySdk],
  ])('maps Key Vault, credential format and Entra errors (%s) to 503s naming the dependency', (_how, shape) => {
    const vault = credentialDependencyProblem(
      shape(new KeyVaultAccessError("assign it the role 'Key Vault Secrets User' on the vault", 403)),
    );
    expect(vault?.doc).toMatchObject({ status: 503, dependency: 'Key Vault' });
    expect(vault?.doc.type).toMatch(/key-vault-unavailable$/);
    expect(vault?.headers).toEqual({ 'retry-after': '30' });

    const format = credentialDependencyProblem(shape(new CredentialFormatError('The Key Vault secret is empty.')));
    expect(format?.doc).toMatchObject({ status: 503, dependency: 'Key Vault' });
    expect(format?.doc.detail).toMatch(/APP_CREDENTIAL_NAME/);

    const entraError = Object.assign(
      new Error(
        'ClientSecretCredential authentication failed: AADSTS7000222: The provided client secret keys are expired.\r\nTrace ID: 1',
      ),
      { name: 'AuthenticationError' },
    );
    const entra = credentialDependencyProblem(shape(entraError));
    expect(entra?.doc).toMatchObject({ status: 503, dependency: 'Entra ID' });
    expect(entra?.doc.detail).toMatch(/AADSTS7000222.*Fix: the client secret has expired/);
    expect(entra?.doc.detail).not.toContain('Trace ID');
  });

  it('leaves other errors alone, and maps a connection failure to Graph as graph-unreachable', () => {
    const network = wrappedBySdk(new TypeError('fetch failed'));
    expect(credentialDependencyProblem(network)).toBeUndefined();
    expect(credentialDependencyProblem(new GraphError(403, 'denied'))).toBeUndefined();
    const problem = graphProblem(network, { clientRequestId: 'c-1' }, 'alerts@contoso.com');
    expect(problem.doc).toMatchObject({ status: 502, clientRequestId: 'c-1' });
    expect(problem.doc.type).toMatch(/graph-unreachable$/);
    expect(problem.doc.detail).toContain('fetch failed');
  });
});
