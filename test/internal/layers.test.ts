/**
 * The layering of `shared/` as the README's layout section lists it: each folder imports (at run time) only folders
 * listed before it. A lower folder that imports a higher one is how a ground floor ends up importing everything
 * above it; this test names the file and the import that would do it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { appRoot } from '../../shared/platform/packageInfo';

/** Ground floor first, the composition root last. */
const ORDER = [
  'platform',
  'identity',
  'graph',
  'events',
  'pacing',
  'mail',
  'watch',
  'outbox',
  'messages',
  'openapi',
  'diagnostics',
  'app',
];

const shared = join(appRoot(), 'shared');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const folderOf = (path: string) => relative(shared, path).split('/')[0];

/** Every run-time relative import in shared/ that crosses a folder: `file -> specifier` with both folders. */
function crossings(): { file: string; from: string; to: string; specifier: string }[] {
  const found = [];
  for (const file of sources(shared)) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)) {
      if (/^\s*import\s+type\b/.test(match[0])) continue; // erased at compile time: no run-time dependency
      const target = resolve(dirname(file), match[1]);
      const [from, to] = [folderOf(file), folderOf(target)];
      if (from !== to) found.push({ file: relative(appRoot(), file), from, to, specifier: match[1] });
    }
  }
  return found;
}

describe('shared/ layering', () => {
  it('lists every folder of shared/ in the order', () => {
    const folders = readdirSync(shared).filter((name) => statSync(join(shared, name)).isDirectory());
    expect(folders.sort()).toEqual([...ORDER].sort());
  });

  it('has each folder import only folders listed before it', () => {
    const upward = crossings()
      .filter(({ from, to }) => ORDER.indexOf(to) >= ORDER.indexOf(from))
      .map(({ file, specifier }) => `${file} -> ${specifier}`);
    expect(upward).toEqual([]);
  });

  it('sees the imports it judges (the composition root imports the concerns)', () => {
    const fromApp = new Set(
      crossings()
        .filter(({ from }) => from === 'app')
        .map(({ to }) => to),
    );
    expect([...fromApp]).toEqual(expect.arrayContaining(['platform', 'outbox', 'watch']));
  });
});
