/** Finds a command on PATH the way a shell would, without running it. */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

/**
 * The full path of `command` on `env.PATH` (with `PATHEXT` extensions on Windows, where `func` is `func.cmd` or
 * `func.exe`), or undefined when it is not installed there.
 */
export function findExecutable(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const windows = process.platform === 'win32';
  const pathValue = env.PATH ?? env.Path ?? '';
  const extensions = windows ? ['', ...(env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';')] : [''];
  for (const dir of pathValue.split(path.delimiter)) {
    if (dir === '') continue;
    for (const ext of extensions) {
      const candidate = path.join(dir, command + ext.toLowerCase());
      try {
        if (!statSync(candidate).isFile()) continue;
        if (!windows) accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here, or not executable: keep looking, as a shell does
      }
    }
  }
  return undefined;
}
