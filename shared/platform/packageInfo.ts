/** The app's package.json, found by walking up from the running file (ts sources and dist/ alike). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The folder holding the app's package.json. */
export function appRoot(start: string = __dirname): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`No package.json above ${start}`);
    dir = parent;
  }
  return dir;
}

/** The app's version from package.json. */
export const APP_VERSION: string = (
  JSON.parse(readFileSync(join(appRoot(), 'package.json'), 'utf8')) as { version: string }
).version;
