import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A throwaway folder; `dispose` removes it and everything in it. */
export interface TempDir {
  path: string;
  dispose(): void;
}

export function tempDir(prefix: string): TempDir {
  const path = mkdtempSync(join(tmpdir(), `octask-${prefix}-`));
  return { path, dispose: () => rmSync(path, { recursive: true, force: true }) };
}

/** Runs git in `cwd` without reading the user's or system's git config. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
  });
}

export function initRepo(dir: string): void {
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'config', 'user.name', 'Octask Test');
  git(dir, 'config', 'user.email', 'test@octask.invalid');
  git(dir, 'config', 'core.autocrlf', 'false');
}

/** Writes `content` at `root/rel`, creating folders; `mode` is applied after writing. */
export function writeFile(
  root: string,
  rel: string,
  content: string | Buffer,
  mode?: number,
): void {
  const abs = join(root, rel);
  mkdirSync(dirname(abs), { recursive: true });
  writeFileSync(abs, content);
  if (mode !== undefined) chmodSync(abs, mode);
}

export function symlink(root: string, rel: string, target: string): void {
  const abs = join(root, rel);
  mkdirSync(dirname(abs), { recursive: true });
  symlinkSync(target, abs);
}

/**
 * A workspace exercising every case sync must tell apart, inside a folder
 * that also holds `outside.txt` (so a link can escape to a real file):
 *
 * - tracked: `.gitignore`, `src/main.ts`, `src/util/strings.ts`, `run.sh`
 *   (0755), `link-in` → src/main.ts, `link-out` → ../outside.txt,
 *   `link-abs` → /etc/hostname
 * - tracked then deleted from disk: `gone.txt`
 * - untracked, not ignored: `notes/untracked.md`
 * - ignored: `debug.log`, `build/out.js`, `build/nested/deep.js`
 */
export function makeFixtureRepo(parent: string): string {
  const root = join(parent, 'ws');
  mkdirSync(root);
  writeFileSync(join(parent, 'outside.txt'), 'not part of the workspace\n');
  initRepo(root);
  writeFile(root, '.gitignore', '*.log\nbuild/\n');
  writeFile(root, 'src/main.ts', 'console.log("hi");\n');
  writeFile(root, 'src/util/strings.ts', 'export const s = 1;\n');
  writeFile(root, 'run.sh', '#!/bin/sh\necho run\n', 0o755);
  writeFile(root, 'gone.txt', 'soon deleted\n');
  symlink(root, 'link-in', 'src/main.ts');
  symlink(root, 'link-out', '../outside.txt');
  symlink(root, 'link-abs', '/etc/hostname');
  git(root, 'add', '-A');
  git(root, 'commit', '-q', '-m', 'fixture');
  rmSync(join(root, 'gone.txt'));
  writeFile(root, 'notes/untracked.md', '# notes\n');
  writeFile(root, 'debug.log', 'ignored\n');
  writeFile(root, 'build/out.js', 'ignored build output\n');
  writeFile(root, 'build/nested/deep.js', 'ignored, deeper\n');
  return root;
}
