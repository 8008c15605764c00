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

/** How many characters of one request value a log line quotes before cutting it. */
export const LOG_VALUE_MAX_CHARS = 120;

/**
 * A value taken from a request (an id, a header name, a mailbox) as it may stand in a log line: control characters
 * (line breaks above all, which would start a forged line) and other invisible separators are written as escapes
 * (`\n`, `\u0000`, `\u2028`), and the result is cut to `max` characters with the original length said, so a request
 * can neither forge a line nor make one huge. Secrets are redacted too.
 */
export function logValue(value: unknown, max: number = LOG_VALUE_MAX_CHARS): string {
  const text = typeof value === 'string' ? value : String(value);
  // Redact before cutting, so that a token the cut would split is still recognised whole (a token is far shorter
  // than the margin); redacting only a bounded prefix keeps a huge value cheap.
  const redacted = redactSecrets(text.length > max + 8192 ? text.slice(0, max + 8192) : text);
  const cut = redacted.length > max ? redacted.slice(0, max) : redacted;
  const escaped = cut.replace(
    // C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides.
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (ch) => {
      switch (ch) {
        case '\n':
          return '\\n';
        case '\r':
          return '\\r';
        case '\t':
          return '\\t';
        default:
          return `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
      }
    },
  );
  return text.length > max ? `${escaped}… (${text.length} chars)` : escaped;
}
