import { HttpProblem } from '../../shared/platform/problems/httpProblem';
import { graphIdSegment, MAX_GRAPH_ID_LENGTH, parseGraphId } from '../../shared/messages/messageIds';

const EXCHANGE_ID =
  'AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5e-T7KzowPTAAAAAAEMAAAiIsqMbYjsT5e-T7KzowPTAAAYbvZDAAA=';

function refusal(value: string | undefined): HttpProblem {
  try {
    parseGraphId(value, 'message');
  } catch (err) {
    if (err instanceof HttpProblem) return err;
    throw err;
  }
  throw new Error(`accepted ${String(value)}`);
}

describe('ids in the path', () => {
  it('accepts the ids Graph hands out, URL-safe or standard base64', () => {
    expect(parseGraphId(EXCHANGE_ID, 'message')).toBe(EXCHANGE_ID);
    expect(parseGraphId('AAMkAD+abc/def==', 'attachment')).toBe('AAMkAD+abc/def==');
  });

  it.each([
    ['', /is missing/],
    [undefined, /is missing/],
    ['a'.repeat(MAX_GRAPH_ID_LENGTH + 1), /at most 512/],
    ['AAMk?$select=body', /alphabet/],
    ['AAMk/../../users/ceo@contoso.com/messages', /alphabet/],
    ['AAMk%2F..', /alphabet/],
    ['AAMk\u0000', /alphabet/],
    ['AAMk id', /alphabet/],
  ])('refuses %j with 400 invalid-message-id', (value, reason) => {
    const problem = refusal(value);
    expect(problem.doc).toMatchObject({ status: 400, type: '/api/problems/invalid-message-id' });
    expect(problem.doc.detail).toMatch(reason);
  });

  it('encodes what passes into one Graph path segment', () => {
    expect(graphIdSegment('AAMkAD+abc/def==')).toBe('AAMkAD%2Babc%2Fdef%3D%3D');
  });
});
