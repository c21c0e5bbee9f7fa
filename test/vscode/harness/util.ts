/** Small process and file helpers for the VS Code harness (run.ts). */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const CODE_SERVER_VERSION = '4.100.3';
export const REPO = path.resolve(__dirname, '..', '..', '..', '..');
export const RESULTS = path.join(REPO, 'test-results', 'vscode');

export function log(message: string): void {
  process.stdout.write(`[run] ${message}\n`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(cannot read ${file}: ${errorText(err)})`;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port from the OS'));
      });
    });
  });
}

export function httpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 2_000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
  });
}

export interface RunArgs {
  grep?: string;
  /** Leave workspace trust on: the workspace opens in Restricted Mode. */
  untrusted?: boolean;
  /** The window-reload pass: one agent started here, a suite that reloads the window. */
  reload?: boolean;
}

export function parseArgs(argv: string[]): RunArgs {
  const options: RunArgs = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--grep' || arg === '-g') {
      const pattern = argv[++i];
      if (pattern === undefined) throw new Error(`${arg} needs a pattern`);
      options.grep = pattern;
    } else if (arg === '--untrusted') {
      options.untrusted = true;
    } else if (arg === '--reload') {
      options.reload = true;
    } else if (arg.startsWith('--grep=')) {
      options.grep = arg.slice('--grep='.length);
    } else {
      throw new Error(
        `unknown argument "${arg}"; usage: node out/test/vscode/run.js [--grep <pattern>] [--untrusted | --reload]`,
      );
    }
  }
  return options;
}

export function locateCodeServer(): string {
  const cacheHome = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache');
  const cache = process.env.OCTASK_VSCODE_CACHE ?? path.join(cacheHome, 'octask', 'vscode-test');
  const dir = path.join(cache, `code-server-${CODE_SERVER_VERSION}`);
  const bin = path.join(dir, 'node_modules', '.bin', 'code-server');
  if (!fs.existsSync(path.join(dir, '.installed')) || !fs.existsSync(bin)) {
    throw new Error(
      `code-server ${CODE_SERVER_VERSION} is not installed in ${dir}; run bash test/vscode/setup.sh`,
    );
  }
  // The bin is a symlink to a `#!/usr/bin/env node` script; running it with our own Node keeps
  // the version that setup.sh built its native modules for, whatever PATH says.
  return fs.realpathSync(bin);
}

export function copyDir(from: string, to: string): void {
  if (fs.existsSync(from)) fs.cpSync(from, to, { recursive: true });
  else fs.mkdirSync(to, { recursive: true });
}

/** Processes that inherited this run's marker: code-server, its extension host and whatever the
 * tests started from there, including those that left code-server's process group (setsid). */
export function markedProcesses(marker: string): number[] {
  if (process.platform !== 'linux') return [];
  const needle = `OCTASK_E2E_RUN=${marker}`;
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(needle)) {
        pids.push(Number(entry));
      }
    } catch {
      // Gone already, or not ours to read.
    }
  }
  return pids;
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}
