import { readFile, stat } from 'node:fs/promises';
import * as vscode from 'vscode';
import type { ClusterKey } from '../../shared/clusterKey';
import {
  defaultKeyFile,
  formatKey,
  generateKey,
  keyFileModeProblem,
  parseKey,
} from '../../shared/clusterKey';

const SECRET = 'octask.clusterKey';

export interface LoadedKey {
  key: ClusterKey;
  /** Where it came from, for Diagnose and the log (never the key itself). */
  source: 'secret storage' | string;
}

/** The key file the agent and CLI use on this machine (`~/.config/octask/key`, or OCTASK_KEY_FILE). */
export function machineKeyFile(): string {
  return process.env.OCTASK_KEY_FILE || defaultKeyFile();
}

/**
 * The cluster key, kept in VS Code's SecretStorage and never in settings.
 * Without one there, the machine's own key file (made by `octask key --new`
 * or a local agent) is used, so a machine already set up needs no pasting.
 */
export class ClusterKeyStore implements vscode.Disposable {
  private loaded: LoadedKey | undefined;
  private readonly changed = new vscode.EventEmitter<LoadedKey | undefined>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly secrets: vscode.SecretStorage) {
    // Another window of the same VS Code set or cleared the key.
    secrets.onDidChange((e) => {
      if (e.key === SECRET) void this.load();
    });
  }

  /** Why the machine's key file was not used, when it exists (too open, not a cluster key). */
  fileProblem: string | undefined;

  get current(): LoadedKey | undefined {
    return this.loaded;
  }

  async load(): Promise<LoadedKey | undefined> {
    const next = await this.read();
    // Compared after the read: a store and its change event both load, and only one may report it.
    const changed = next?.key.id !== this.loaded?.key.id;
    this.loaded = next;
    if (changed) this.changed.fire(next);
    return next;
  }

  /** Stores a key given as 64 hex digits; throws a readable error otherwise. */
  async set(text: string): Promise<LoadedKey> {
    const key = parseKey(text, 'the pasted text');
    await this.secrets.store(SECRET, formatKey(key));
    const loaded = await this.load();
    return loaded ?? { key, source: 'secret storage' };
  }

  async generate(): Promise<LoadedKey> {
    return this.set(formatKey(generateKey()));
  }

  async clear(): Promise<void> {
    await this.secrets.delete(SECRET);
    await this.load();
  }

  dispose(): void {
    this.changed.dispose();
  }

  private async read(): Promise<LoadedKey | undefined> {
    const stored = await this.secrets.get(SECRET);
    if (stored) {
      try {
        return { key: parseKey(stored, 'the stored key'), source: 'secret storage' };
      } catch {
        // A damaged entry is as good as none; the machine's file may still serve.
      }
    }
    const file = machineKeyFile();
    this.fileProblem = undefined;
    try {
      const problem = keyFileModeProblem(file, (await stat(file)).mode, process.platform);
      if (problem) {
        this.fileProblem = problem;
        return undefined;
      }
      return { key: parseKey(await readFile(file, 'utf8'), file), source: file };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.fileProblem = (err as Error).message;
      return undefined;
    }
  }
}
