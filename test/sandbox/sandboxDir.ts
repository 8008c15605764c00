/**
 * The sandbox's working folder (CA, staged package) and its lock. Each sandbox works in its own folder, and a
 * folder a running sandbox owns is never touched by another: the lock file holds the owner's pid, created with
 * O_EXCL so two sandboxes starting at the same moment cannot both win it.
 */
import { readdirSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The lock file's name inside the sandbox folder. */
export const LOCK_FILE = 'sandbox.pid';

/** Thrown when another live process owns the folder. */
export class SandboxDirInUseError extends Error {
  /** The folder asked for. */
  readonly dir: string;
  /** The pid written in its lock file. */
  readonly ownerPid: number;

  constructor(dir: string, ownerPid: number) {
    super(
      `${dir} belongs to a running sandbox (pid ${ownerPid}); stop that one, or set PORT to start another ` +
        `(each PORT has its own folder). If no sandbox runs, delete ${join(dir, LOCK_FILE)}.`,
    );
    this.name = 'SandboxDirInUseError';
    this.dir = dir;
    this.ownerPid = ownerPid;
  }
}

/** A claimed sandbox folder. */
export interface SandboxDirClaim {
  /** The folder, empty but for the lock when claimed. */
  dir: string;
  /** Removes the lock if this process still owns it. Idempotent. */
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user; still alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes `dir` for this process: throws {@link SandboxDirInUseError} when a live process holds its lock; otherwise
 * takes the lock (replacing one a dead sandbox left behind) and only then empties the folder of the last run's
 * files.
 */
export function claimSandboxDir(dir: string): SandboxDirClaim {
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, LOCK_FILE);
  for (let attempt = 1; ; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = readOwner(lock);
      if (owner !== undefined && owner !== process.pid && isAlive(owner)) throw new SandboxDirInUseError(dir, owner);
      // A sandbox that was killed left its lock; another one racing to replace it wins, and we see it next round.
      if (attempt >= 3) throw new Error(`cannot take the lock ${lock}: it keeps changing`);
      rmSync(lock, { force: true });
    }
  }
  for (const entry of readdirSync(dir)) {
    if (entry !== LOCK_FILE) rmSync(join(dir, entry), { recursive: true, force: true });
  }
  let released = false;
  return {
    dir,
    release: () => {
      if (released) return;
      released = true;
      if (readOwner(lock) === process.pid) rmSync(lock, { force: true });
    },
  };
}
