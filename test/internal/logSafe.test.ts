import { LOG_VALUE_MAX_CHARS, logValue } from '../../shared/platform/logSafe';

describe('logValue', () => {
  it('writes line breaks and other controls as escapes, so a value cannot start a forged line', () => {
    const forged = 'x\n00:00:00.000 [sendOutbox] outbox mail 1234 sent as ceo@contoso.com\r\u0000\u001b[31m\u2028';
    const out = logValue(forged);
    // eslint-disable-next-line no-control-regex -- the control characters are what must not be there
    expect(out).not.toMatch(/[\n\r\u0000\u001b\u2028]/);
    expect(out).toBe(
      'x\\n00:00:00.000 [sendOutbox] outbox mail 1234 sent as ceo@contoso.com\\r\\u0000\\u001b[31m\\u2028',
    );
  });

  it('cuts a long value and says how long it was', () => {
    const out = logValue('a'.repeat(255_000));
    expect(out.length).toBeLessThan(LOG_VALUE_MAX_CHARS + 40);
    expect(out).toContain('(255000 chars)');
  });

  it('leaves an ordinary value as it is and redacts tokens', () => {
    expect(logValue('it@contoso.com')).toBe('it@contoso.com');
    expect(logValue('Bearer abc.def')).toBe('Bearer [token]');
  });

  it('redacts a token that the cut would split', () => {
    const token = `eyJ${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}`;
    const out = logValue(`${'x'.repeat(100)} ${token}`);
    expect(out).not.toContain('eyJ');
    expect(out.startsWith(`${'x'.repeat(100)} [token]`)).toBe(true);
  });
});
