/**
 * Entra ID's answers to a client-credentials token request, by AADSTS code: which ones reject the credential
 * itself (so another Key Vault version may work) and what the operator must fix for each. Codes and meanings from
 * Microsoft's AADSTS reference (learn.microsoft.com/entra/identity-platform/reference-error-codes).
 */

/** What one AADSTS code means for the gateway. */
export interface EntraRejection {
  /** The AADSTS number, e.g. 700027. */
  code: number;
  /** True when the code is about the credential presented (certificate or secret), not about the app or tenant. */
  credentialRejected: boolean;
  /** What to fix, in the operator's words. */
  fix: string;
}

const FIXES: Readonly<Record<number, Omit<EntraRejection, 'code'>>> = {
  700027: {
    credentialRejected: true,
    fix: 'the certificate is not registered on the app registration (or has expired there): upload it under App registrations > Certificates & secrets, or disable that version in Key Vault',
  },
  7000215: {
    credentialRejected: true,
    fix: "the client secret is not one of the app registration's secrets: add it under App registrations > Certificates & secrets (the secret value, not its id), or disable that version in Key Vault",
  },
  7000222: {
    credentialRejected: true,
    fix: 'the client secret has expired on the app registration: create a new secret and store it in Key Vault',
  },
  700024: {
    credentialRejected: false,
    fix: "the client assertion is outside its valid time range: check the machine's clock",
  },
  700016: {
    credentialRejected: false,
    fix: 'no application with this client id exists in the tenant: check ENTRA_CLIENT_ID and ENTRA_TENANT_ID',
  },
  90002: {
    credentialRejected: false,
    fix: 'the tenant does not exist in this cloud: check ENTRA_TENANT_ID and AZURE_CLOUD',
  },
  7000218: {
    credentialRejected: false,
    fix: 'the request carried no credential: check that Key Vault holds a certificate or secret under APP_CREDENTIAL_NAME',
  },
  50012: {
    credentialRejected: false,
    fix: 'Entra ID could not authenticate the app: check the credential in Key Vault against the app registration',
  },
};

/** The first AADSTS code in an error (MSAL puts it in the message and in `errorResponse`), if any. */
function aadstsCode(err: unknown): number | undefined {
  const match = /AADSTS(\d{5,7})\b/.exec(errorText(err));
  return match ? Number(match[1]) : undefined;
}

/** What an Entra failure means, or undefined when it carries no AADSTS code the gateway knows. */
export function explainEntraError(err: unknown): EntraRejection | undefined {
  const code = aadstsCode(err);
  const known = code === undefined ? undefined : FIXES[code];
  return code !== undefined && known ? { code, ...known } : undefined;
}

/** True when Entra rejected the presented credential itself: another Key Vault version may be accepted. */
export function isCredentialRejected(err: unknown): boolean {
  return explainEntraError(err)?.credentialRejected === true;
}

/** The first line of Entra's reason (AADSTS code and text), without trace and correlation ids. */
export function entraReason(err: unknown): string {
  const text = errorText(err);
  const match = /AADSTS\d+:[^\r\n]*/.exec(text);
  return (match ? match[0] : text.split(/\r?\n/)[0]).trim().slice(0, 400);
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const response = (err as { errorResponse?: { error?: string; errorDescription?: string } }).errorResponse;
  return `${err.message} ${response?.error ?? ''} ${response?.errorDescription ?? ''}`;
}
