/**
 * Every reference in the READMEs resolves: relative links, and backticked repository paths (`shared/x.ts`,
 * `infra/`, `main.bicep`). Paths the repository ignores (.gitignore: build output, the sandbox's files,
 * `local.settings.json`) are made by the commands the README gives, so they are not expected in the tree.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { appRoot } from '../../shared/platform/packageInfo';

const ROOT = appRoot();
const DOCUMENTS = ['README.md', 'infra/README.md'];

// A backticked span is taken for a repository path when it is a directory (`test/public/`) or a file name with
// one of the extensions the repository uses; MIME types, settings, hosts and API routes are not.
const DIRECTORY = /^[\w.-]+(\/[\w.-]+)*\/$/;
const FILE = /^[\w.-]+(\/[\w.*-]+)*\.(ts|js|mjs|json|md|bicep|ps1|pem|ya?ml|sh)$/;

/** Entries of .gitignore: `dir/` or a file name (the patterns this check understands). */
function ignoredPaths(): string[] {
  return readFileSync(join(ROOT, '.gitignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#') && !line.includes('*'));
}

function isIgnored(path: string, ignored: readonly string[]): boolean {
  return ignored.some((entry) =>
    entry.endsWith('/') ? `${path}/`.startsWith(entry) : path === entry || path.endsWith(`/${entry}`),
  );
}

/** A problem: where, and the reference that does not resolve. */
interface Unresolved {
  document: string;
  line: number;
  reference: string;
}

/**
 * Finds the references in one Markdown text that do not resolve. `document` is its path from the root. Links
 * resolve from the document's folder (as GitHub renders them); backticked paths from the document's folder, the
 * repository root, or a folder named in backticks earlier in the same section (`test/emulators/` ... `entra.ts`).
 */
function unresolvedReferences(document: string, markdown: string, root = ROOT): Unresolved[] {
  const ignored = ignoredPaths();
  const base = dirname(document);
  const exists = (path: string) => existsSync(join(root, normalize(path)));
  const problems: Unresolved[] = [];
  let sectionFolders: string[] = [];
  let fenced = false;
  markdown.split('\n').forEach((text, index) => {
    const line = index + 1;
    if (/^\s*(```|~~~)/.test(text)) fenced = !fenced;
    if (fenced) return;
    if (/^#{1,6}\s/.test(text)) sectionFolders = [];

    for (const [, target] of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      if (/^[a-z][a-z\d+.-]*:/i.test(target) || target.startsWith('#')) continue; // a URL or an anchor
      const path = decodeURI(target.split('#')[0]);
      if (!exists(join(base, path))) problems.push({ document, line, reference: target });
    }

    for (const [, span] of text.matchAll(/`([^`\s]+)`/g)) {
      if (!DIRECTORY.test(span) && !FILE.test(span)) continue;
      const path = span.replace(/\/$/, '');
      if (isIgnored(path, ignored) || isIgnored(join(base, path), ignored)) continue;
      const found = [base, '.', ...sectionFolders].find((folder) => exists(join(folder, path)));
      if (found === undefined) problems.push({ document, line, reference: span });
      else if (DIRECTORY.test(span)) sectionFolders.push(join(found, path));
    }
  });
  return problems;
}

describe('references in the READMEs', () => {
  it.each(DOCUMENTS)('every relative link and backticked repository path in %s resolves', (document) => {
    expect(unresolvedReferences(document, readFileSync(join(ROOT, document), 'utf8'))).toEqual([]);
  });

  it('finds a broken link, a missing path and a file outside the folders its section names', () => {
    const markdown = [
      '# One',
      'See [the facts](docs/NO-SUCH-FACTS.md), [the infra](infra/README.md#deploy) and [a site](https://x.org).',
      'Config lives in `shared/platform/config.ts`, not in `shared/platform/settings.ts`; MIME `application/json`.',
      'The emulators in `test/emulators/`: `entra.ts`, `graph/`; built into `dist/functions/*.js`.',
      '```sh',
      'cat `no/such/file.ts`',
      '```',
      '# Two',
      'Here `entra.ts` names no folder and `local.settings.json` is made by cp.',
    ].join('\n');
    expect(unresolvedReferences('README.md', markdown)).toEqual([
      { document: 'README.md', line: 2, reference: 'docs/NO-SUCH-FACTS.md' },
      { document: 'README.md', line: 3, reference: 'shared/platform/settings.ts' },
      { document: 'README.md', line: 9, reference: 'entra.ts' },
    ]);
  });

  it('keeps the Graph facts the README cites in the repository', () => {
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain('](docs/GRAPH-FACTS.md)');
    expect(readFileSync(join(ROOT, 'docs', 'GRAPH-FACTS.md'), 'utf8')).toMatch(/^# Microsoft Graph, Entra ID/);
  });
});
