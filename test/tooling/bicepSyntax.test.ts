/**
 * Bicep cannot be compiled here (the Bicep CLI downloads itself), so CI parses every infra/**\/*.bicep with the
 * tree-sitter Bicep grammar and fails on any syntax error, naming file:line:column.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { findBicepFiles, parseBicep, syntaxErrors } from '../support/bicep';

const INFRA = path.join(__dirname, '..', '..', 'infra');

async function errorsOf(source: string): Promise<string[]> {
  return syntaxErrors((await parseBicep(source)).root).map((e) => `${e.line}:${e.column} ${e.message}`);
}

describe('infra/ Bicep syntax', () => {
  const files = findBicepFiles(INFRA);

  it('finds the template and its modules', () => {
    const relative = files.map((f) => path.relative(INFRA, f));
    expect(relative).toEqual(expect.arrayContaining(['main.bicep', 'modules/functionApp.bicep']));
    expect(relative.length).toBeGreaterThanOrEqual(7);
  });

  it('parses every file without an ERROR or MISSING node', async () => {
    const problems: string[] = [];
    for (const file of files) {
      const { root } = await parseBicep(readFileSync(file, 'utf8'));
      for (const e of syntaxErrors(root))
        problems.push(`${path.relative(INFRA, file)}:${e.line}:${e.column}: ${e.message}`);
    }
    expect(problems).toEqual([]);
  });

  it('uses only extensions that bicepconfig.json configures', async () => {
    const config = JSON.parse(readFileSync(path.join(INFRA, 'bicepconfig.json'), 'utf8')) as {
      extensions?: Record<string, string>;
    };
    const configured = new Set(Object.keys(config.extensions ?? {}));
    const used: string[] = [];
    for (const file of files) used.push(...(await parseBicep(readFileSync(file, 'utf8'))).extensions);
    expect(used).toContain('microsoftGraphV1');
    // An alias (not a 'br:...' reference) must be declared in bicepconfig.json or Bicep cannot restore it.
    expect(used.filter((name) => !name.includes(':') && !configured.has(name))).toEqual([]);
  });
});

describe('the grammar check is not vacuous', () => {
  it('accepts well-formed Bicep using the constructs infra/ relies on', async () => {
    const source = [
      'extension microsoftGraphV1',
      '@allowed([',
      "  '22'",
      '])',
      "param nodeVersion string = '22'",
      "param check string = grant ? 'token' : 'off'",
      'var list = filter(items, item => !empty(item.key))',
      "resource site 'Microsoft.Web/sites@2024-04-01' existing = {",
      "  name: 'x'",
      '}',
      "resource p 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = [",
      '  for policy in [',
      "    'ftp'",
      '  ]: {',
      '    parent: site',
      '    name: policy',
      '  }',
      ']',
      "output id string = cond ? mod!.outputs.id : ''",
    ].join('\n');
    expect(await errorsOf(source)).toEqual([]);
  });

  // tree-sitter reports where recovery starts, which may be the statement's first line or the next one: the line
  // must fall inside the broken statement's span.
  it.each([
    ['an unclosed object', "resource r 'Microsoft.Web/sites@2024-04-01' = {\n  name: 'x'\n", [1, 2]],
    ['an unclosed array', 'var a = [\n  1\n  2\n', [1, 3]],
    ['a declaration without a value', 'param x string =\nvar y = 1', [1, 2]],
    ['two values on one property line', 'var o = {\n  a: 1 2\n}', [2, 2]],
    ['an unterminated string', "param p string = 'open\nvar z = 1", [1, 2]],
    ['an unclosed call', 'var b = concat([\n  1\n], [', [1, 3]],
    ['a broken extension statement', 'extension microsoftGraphV1 with\nvar q = 1', [1, 2]],
  ])('fails on %s, naming a line of it', async (_what, source, [first, last]) => {
    const errors = await errorsOf(source);
    expect(errors.length).toBeGreaterThan(0);
    const lines = errors.map((e) => Number(e.split(':')[0]));
    expect(lines.some((line) => line >= first && line <= last)).toBe(true);
  });

  it('passes a clean file and fails the same file with one character removed', async () => {
    const clean = readFileSync(path.join(INFRA, 'modules', 'identity.bicep'), 'utf8');
    expect(await errorsOf(clean)).toEqual([]);
    const broken = clean.replace(/\n\}\n/, '\n\n');
    expect(broken).not.toBe(clean);
    expect((await errorsOf(broken)).length).toBeGreaterThan(0);
  });
});
