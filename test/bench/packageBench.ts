/**
 * Package benchmark: the zipped size of the staged deployment package (zipped as Core Tools packs it) and the cold
 * load of all function entry points, bundled (the package's `main`) against the repository build
 * (`dist/functions/*.js` with node_modules), each in a fresh Node process, alternating, median of several runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findFunctionFiles, readMainPattern } from '../sandbox/host/projectConfig';
import { stageFunctionPackage, zipFunctionPackage } from '../../tools/functionPackage';

/** What the package benchmark measured. */
export interface PackageBenchResult {
  zipBytes: number;
  stagedFiles: number;
  runs: number;
  unbundledMedianMs: number;
  bundledMedianMs: number;
  /** bundled / unbundled. */
  ratio: number;
  functionsRegistered: number;
}

function loadOnce(files: string[]): { ms: number; registered: number } {
  const loader = path.join(__dirname, 'loadEntryPoints.js');
  const out = execFileSync(process.execPath, [loader, ...files], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as { ms: number; registered: number };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Stages the package in a temporary folder and measures it against the repository build at `projectRoot`. */
export async function runPackageBench(projectRoot: string, runs = 7): Promise<PackageBenchResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'mail-gateway-package-bench-'));
  try {
    const staged = await stageFunctionPackage(projectRoot, path.join(dir, 'package'));
    const zipBytes = zipFunctionPackage(staged.dir).length;
    const unbundledFiles = findFunctionFiles(projectRoot, readMainPattern(projectRoot));
    const bundledFiles = findFunctionFiles(staged.dir, readMainPattern(staged.dir));
    // One unmeasured load of each warms the OS file cache, so "cold" means a fresh process, not a cold disk.
    loadOnce(unbundledFiles);
    loadOnce(bundledFiles);
    const unbundled: number[] = [];
    const bundled: number[] = [];
    let functionsRegistered = 0;
    for (let i = 0; i < runs; i++) {
      const u = loadOnce(unbundledFiles);
      const b = loadOnce(bundledFiles);
      if (u.registered !== b.registered) {
        throw new Error(`the bundle registered ${b.registered} functions, the repository build ${u.registered}`);
      }
      functionsRegistered = b.registered;
      unbundled.push(u.ms);
      bundled.push(b.ms);
    }
    const unbundledMedianMs = median(unbundled);
    const bundledMedianMs = median(bundled);
    return {
      zipBytes,
      stagedFiles: staged.files.length,
      runs,
      unbundledMedianMs,
      bundledMedianMs,
      ratio: bundledMedianMs / unbundledMedianMs,
      functionsRegistered,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
