import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type * as vscode from 'vscode';
import type { ClusterKey } from '../../shared/clusterKey';
import { deriveAgentKey, formatAgentKey } from '../../shared/clusterKey';

export interface RunningLocalAgent {
  address: string;
  name: string;
  pid: number;
}

/**
 * The bundled `octask-agent` run on this machine, so the editor's own
 * machine joins the pool. It listens on loopback only (other dispatchers
 * have their own agents) on a free port, with the editor's cluster key.
 */
export class LocalAgent {
  private proc: ChildProcess | undefined;
  private info: RunningLocalAgent | undefined;

  constructor(
    private readonly agentScript: string,
    private readonly storageDir: string,
    private readonly log: vscode.LogOutputChannel,
    private readonly onExit: (info: RunningLocalAgent) => void,
  ) {}

  get running(): RunningLocalAgent | undefined {
    return this.info;
  }

  async start(key: ClusterKey, nodePath: string | undefined): Promise<RunningLocalAgent> {
    if (this.info) return this.info;
    const keyFile = join(this.storageDir, 'agent-key');
    const workdir = join(this.storageDir, 'agent');
    await mkdir(workdir, { recursive: true });
    const name = `${hostname().split('.')[0] || 'this-machine'}-local`;
    // Its own pairing key: a task it runs can read this file, and must not find the cluster key there.
    await writeFile(keyFile, formatAgentKey(deriveAgentKey(key, name)) + '\n', { mode: 0o600 });
    // prettier-ignore
    const args = [
      this.agentScript,
      '--name', name,
      '--bind', '127.0.0.1',
      '--port', '0',
      '--no-mdns',
      '--key-file', keyFile,
      '--workdir', workdir,
      '--log-level', 'info',
    ];
    const proc = spawn(nodePath || process.execPath, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      // VS Code's own binary is Electron; this makes it behave as plain Node.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    this.proc = proc;
    return new Promise((resolve, reject) => {
      let settled = false;
      const tail: string[] = [];
      const fail = (why: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        proc.kill('SIGKILL');
        this.proc = undefined;
        reject(new Error(`${why}${tail.length ? `: ${tail.slice(-3).join(' | ')}` : ''}`));
      };
      const timer = setTimeout(() => fail('the local agent did not start within 15 s'), 15_000);
      proc.once('error', (err) => fail(`cannot start the local agent: ${err.message}`));
      proc.once('exit', (code, signal) => {
        const was = this.info;
        this.info = undefined;
        this.proc = undefined;
        if (!settled) fail(`the local agent exited (${signal ?? code}) before listening`);
        else if (was) {
          this.log.info(`local agent ${was.name} stopped (${signal ?? code})`);
          this.onExit(was);
        }
      });
      createInterface({ input: proc.stderr! }).on('line', (line) => {
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch {
          tail.push(line);
          return;
        }
        if (record.level === 'error' || record.level === 'warn') {
          tail.push(String(record.msg));
          this.log.warn(`[local agent] ${String(record.msg)}`);
        }
        if (record.msg !== 'listening' || settled) return;
        settled = true;
        clearTimeout(timer);
        this.info = { address: `127.0.0.1:${String(record.port)}`, name, pid: proc.pid ?? 0 };
        this.log.info(`local agent ${name} listening on ${this.info.address}`);
        resolve(this.info);
      });
    });
  }

  /** Asks the agent to drain, then to cancel, then kills it: its own staged shutdown. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const second = setTimeout(() => proc.kill('SIGTERM'), 2000);
    const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(second);
    clearTimeout(kill);
  }
}
