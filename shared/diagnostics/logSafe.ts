/**
 * Text that may reach a log: error messages and stacks can quote a request (an Authorization header, a form
 * body with a secret, a PEM). This removes what must never be logged, whatever produced the text.
 */

const PATTERNS: readonly [RegExp, string][] = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, '[private key]'],
  [/\beyJ[\w-]+\.[\w-]+\.[\w-]*/g, '[token]'],
  [/\b(Bearer|Basic)\s+[\w.~+/=-]+/gi, '$1 [token]'],
  [
    /\b(client_secret|client_assertion|access_token|refresh_token|AccountKey|SharedAccessSignature|sig)=[^&;\s"]+/gi,
    '$1=[redacted]',
  ],
];

/** `text` with tokens, keys, secrets and private keys replaced by placeholders. */
export function redactSecrets(text: string): string {
  return PATTERNS.reduce((out, [pattern, replacement]) => out.replace(pattern, replacement), text);
}

/** An unexpected error as a log line: its name, message and stack, redacted. */
export function describeForLog(err: unknown): string {
  if (!(err instanceof Error)) return redactSecrets(String(err));
  const stack = err.stack ?? `${err.name}: ${err.message}`;
  // The stack starts with "name: message"; repeat the message only when the stack lacks it.
  return redactSecrets(stack.includes(err.message) ? stack : `${err.name}: ${err.message}\n${stack}`);
}
