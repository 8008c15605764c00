/**
 * The problem catalogue is the one list of problem types: every slug the code in shared/ can put into a problem's
 * `type` has an entry, and every entry is a slug the code can answer with. Slugs are read from the sources with the
 * TypeScript parser: the literal (or each branch of a conditional) passed as the slug argument of `problem(...)`
 * and of the helpers that forward to it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { PROBLEM_CATALOGUE } from '../../shared/platform/problems/problemCatalogue';

const SHARED = path.join(__dirname, '..', '..', 'shared');

/** Functions that take a slug, and the index of that argument. */
const SLUG_ARGUMENT: Record<string, number> = { problem: 1, make: 1, dependencyFailure: 1 };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/** String literals an expression can evaluate to (literals and conditional branches); undefined for others. */
function literals(node: ts.Expression): string[] | undefined {
  if (ts.isStringLiteralLike(node)) return [node.text];
  if (ts.isParenthesizedExpression(node)) return literals(node.expression);
  if (ts.isConditionalExpression(node)) {
    const [a, b] = [literals(node.whenTrue), literals(node.whenFalse)];
    return a && b ? [...a, ...b] : undefined;
  }
  return undefined;
}

/** Every slug passed to a slug-taking function in shared/, with where; forwarded parameters are skipped. */
function slugsInCode(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of sourceFiles(SHARED)) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression)) {
        const index = SLUG_ARGUMENT[node.expression.text];
        const argument = index === undefined ? undefined : node.arguments[index];
        if (argument && !ts.isIdentifier(argument)) {
          const where = `${path.relative(SHARED, file)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
          const values = literals(argument);
          if (!values) throw new Error(`${where}: a slug that is neither a literal nor a parameter`);
          for (const value of values) if (!found.has(value)) found.set(value, where);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

describe('the problem catalogue', () => {
  const inCode = slugsInCode();

  it('finds the slugs the code uses (the scan works)', () => {
    expect(inCode.size).toBeGreaterThan(30);
    expect(inCode.get('validation')).toMatch(/^mail\/sendProblems\.ts:\d+$/);
    expect(inCode.has('outcome-unknown') && inCode.has('outbox-retries-exhausted')).toBe(true);
  });

  it('has an entry for every slug the code can answer with', () => {
    const missing = [...inCode].filter(([slug]) => !(slug in PROBLEM_CATALOGUE)).map(([s, where]) => `${s} (${where})`);
    expect(missing).toEqual([]);
  });

  it('has no entry the code cannot answer with', () => {
    expect(Object.keys(PROBLEM_CATALOGUE).filter((slug) => !inCode.has(slug))).toEqual([]);
  });

  it('gives every entry a title, its statuses, what it means and what to do', () => {
    for (const [slug, entry] of Object.entries(PROBLEM_CATALOGUE)) {
      expect([slug, entry.title.length > 3, entry.meaning.length > 20, entry.fix.length > 10]).toEqual([
        slug,
        true,
        true,
        true,
      ]);
      expect(entry.statuses.every((s) => s >= 400 && s <= 599)).toBe(true);
    }
  });
});
