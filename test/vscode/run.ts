/**
 * Runs test/vscode/suite in a real VS Code: code-server 4.100.3 (VS Code 1.100.3 as a web server)
 * opened in headless Chromium, with this repo as the extension under development. The tests run
 * in code-server's extension host; a loopback "driver" lets them act on the page as a person
 * would (command palette, quick picks, views, screenshots). See README.md in this folder.
 *
 *   node out/test/vscode/run.js [--grep <pattern>] [--untrusted]
 *
 * With --untrusted, workspace trust stays on and the folder opens in Restricted
 * Mode; the suite is then suite/*.untrusted-e2e.js instead of suite/*.e2e.js.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { StartedAgent } from '../helpers/agentProcess';
import { newKeyFile, startAgent } from '../helpers/agentProcess';
import { format } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { Driver } from './harness/driverServer';
import {
  REPO,
  RESULTS,
  copyDir,
  errorText,
  freePort,
  httpAnswers,
  locateCodeServer,
  log,
  markedProcesses,
  parseArgs,
  signal,
  sleep,
  tail,
} from './harness/util';

const SUITE = path.join(REPO, 'out', 'test', 'vscode', 'suite', 'index.js');
const FIXTURE = path.join(REPO, 'test', 'vscode', 'workspace');
const CHROMIUM = process.env.OCTASK_CHROMIUM ?? '/usr/bin/chromium';
const RUN_TIMEOUT_MS = Number(process.env.OCTASK_E2E_TIMEOUT_MS ?? 10 * 60_000);
const LOG_TAIL_LINES = 80;
/** The workbench logs through the same channel as the tests; these lines would bury their output
 * (they stay in browser.log). */
const WORKBENCH_CHATTER =
  /^(Resolving connection token|Resolved connection token|Creating a socket|Ignoring fetching additional builtin|Updating additional builtin|\[Service Worker\]|ChatSessionStore:)/;

class Run {
  private readonly marker = randomBytes(8).toString('hex');
  private readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'octask-vscode-'));
  private readonly userData = path.join(this.root, 'user-data');
  private readonly serverLog = path.join(this.root, 'code-server.log');
  private readonly browserLog = path.join(this.root, 'browser.log');
  private readonly driver = new Driver();
  private server: ChildProcess | undefined;
  private browser: Browser | undefined;
  private cleaning: Promise<void> | undefined;
  private interrupted = false;
  private extensionHostOutput = '';

  /** The reload pass's agent, started by this harness so that it outlives the reload. */
  private reloadAgent: StartedAgent | undefined;

  constructor(
    private readonly grep: string | undefined,
    private readonly untrusted: boolean,
    private readonly reload = false,
  ) {}

  async execute(codeServer: string): Promise<number> {
    const started = Date.now();
    const workspace = path.join(this.root, 'workspace');
    let timer: NodeJS.Timeout | undefined;
    try {
      this.prepareDirs(workspace);
      if (this.reload) {
        // The extension falls back to the machine's key file ($XDG_CONFIG_HOME is the temp root).
        const { path: keyFile } = newKeyFile(path.join(this.root, 'octask'));
        this.reloadAgent = await startAgent({ keyFile, name: 'steady', maxJobs: 1 });
      }
      const driverPort = await this.driver.listen();
      const port = await freePort();
      this.startServer(codeServer, port, driverPort);
      await this.waitForServer(port);
      log(`code-server answers on 127.0.0.1:${port} after ${Date.now() - started} ms`);

      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the run took longer than ${RUN_TIMEOUT_MS} ms`)),
          RUN_TIMEOUT_MS,
        );
      });
      const serverExited = new Promise<never>((_, reject) => {
        this.server?.once('exit', (code, sig) =>
          reject(new Error(`code-server exited (${sig ?? code}) during the run`)),
        );
      });
      const exitCode = await Promise.race([
        this.openWorkbench(port, workspace),
        timedOut,
        serverExited,
      ]);
      log(`the suite exited with ${exitCode} after ${Date.now() - started} ms`);
      if (exitCode !== 0) await this.reportFailure();
      return exitCode;
    } catch (err) {
      // After a signal the failures are our own teardown's doing.
      if (this.interrupted) return 1;
      log(`FAILED: ${errorText(err)}`);
      await this.reportFailure();
      return 1;
    } finally {
      clearTimeout(timer);
    }
  }

  private prepareDirs(workspace: string): void {
    fs.mkdirSync(path.join(this.userData, 'User'), { recursive: true });
    fs.mkdirSync(path.join(this.root, 'extensions'));
    fs.mkdirSync(path.join(this.root, 'tmp'));
    // Quiet: nothing that opens editors, notifications or network look-ups by itself.
    const settings = {
      'telemetry.telemetryLevel': 'off',
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'workbench.enableExperiments': false,
      'workbench.welcomePage.walkthroughs.openOnInstall': false,
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'extensions.ignoreRecommendations': true,
      'update.mode': 'none',
      'git.enabled': false,
      'npm.autoDetect': 'off',
      'typescript.disableAutomaticTypeAcquisition': true,
      // Restricted Mode without the modal that would ask to trust the folder.
      ...(this.untrusted
        ? {
            'security.workspace.trust.enabled': true,
            'security.workspace.trust.startupPrompt': 'never',
          }
        : {}),
    };
    fs.writeFileSync(
      path.join(this.userData, 'User', 'settings.json'),
      JSON.stringify(settings, null, 2),
    );
    copyDir(FIXTURE, workspace);
    fs.mkdirSync(RESULTS, { recursive: true });
    // The untrusted pass runs second and adds to the first pass's screenshots.
    for (const f of this.untrusted ? [] : fs.readdirSync(RESULTS)) {
      if (f.endsWith('.png')) fs.rmSync(path.join(RESULTS, f));
    }
    fs.rmSync(path.join(RESULTS, 'logs'), { recursive: true, force: true });
  }

  private startServer(codeServer: string, port: number, driverPort: number): void {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // code-server writes config.yaml and its own logs under these; keep them in the temp root.
      XDG_CONFIG_HOME: this.root,
      XDG_DATA_HOME: this.root,
      // What the tests make in os.tmpdir() goes with the temp root, even when a signal cut their
      // after() hooks short.
      TMPDIR: path.join(this.root, 'tmp'),
      OCTASK_E2E_DRIVER: `http://127.0.0.1:${driverPort}`,
      OCTASK_E2E_RESULTS: RESULTS,
      OCTASK_E2E_RUN: this.marker,
      // No gallery: code-server would otherwise query open-vsx.org on start.
      EXTENSIONS_GALLERY: '{}',
    };
    if (this.grep !== undefined) env.OCTASK_E2E_GREP = this.grep;
    if (this.untrusted) env.OCTASK_E2E_UNTRUSTED = '1';
    if (this.reload && this.reloadAgent) {
      env.OCTASK_E2E_RELOAD = JSON.stringify({
        address: this.reloadAgent.address,
        phaseFile: path.join(this.root, 'reload-phase.json'),
      });
    }
    const args = [
      codeServer,
      '--auth',
      'none',
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      ...(this.untrusted ? [] : ['--disable-workspace-trust']),
      '--user-data-dir',
      this.userData,
      '--extensions-dir',
      path.join(this.root, 'extensions'),
    ];
    const out = fs.openSync(this.serverLog, 'a');
    try {
      // Its own process group, so that cleanup can take the extension host and helpers with it.
      this.server = spawn(process.execPath, args, {
        cwd: this.root,
        env,
        detached: true,
        stdio: ['ignore', out, out],
      });
    } finally {
      fs.closeSync(out);
    }
    this.server.on('error', (err) => log(`code-server: ${err.message}`));
  }

  private async waitForServer(port: number): Promise<void> {
    const end = Date.now() + 60_000;
    for (;;) {
      const s = this.server;
      if (!s || s.exitCode !== null || s.signalCode !== null) {
        throw new Error(`code-server exited (${s?.signalCode ?? s?.exitCode}) before it answered`);
      }
      if (await httpAnswers(port)) return;
      if (Date.now() > end) throw new Error(`code-server did not answer on port ${port} in 60 s`);
      await sleep(100);
    }
  }

  /** Opens the workbench with the test payload; resolves with the suite's exit code. */
  private async openWorkbench(port: number, workspace: string): Promise<number> {
    this.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Playwright's own handlers would exit the process before code-server is stopped.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        // Nothing but the loopback code-server is for the page to reach.
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      ],
    });
    const page = await this.browser.newPage({ viewport: { width: 1400, height: 900 } });
    this.driver.page = page;
    // Synchronous appends, so the file is complete whenever a failure report copies it.
    const browserLog = (line: string): void => fs.appendFileSync(this.browserLog, `${line}\n`);
    page.on('console', (m) => browserLog(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => browserLog(`[pageerror] ${e.stack ?? e.message}`));

    let exited: (code: number) => void = () => undefined;
    const exitCode = new Promise<number>((resolve) => (exited = resolve));
    // The workbench hands the extension host's console to codeAutomationLog, and calls
    // codeAutomationExit once the suite's run() settles (0 when it resolved).
    await page.exposeFunction('codeAutomationLog', (type: unknown, args: unknown) =>
      this.extensionHostLog(type, args),
    );
    await page.exposeFunction('codeAutomationExit', (code: unknown) =>
      exited(typeof code === 'number' ? code : 1),
    );

    const authority = `127.0.0.1:${port}`;
    const payload = [
      ['extensionDevelopmentPath', `vscode-remote://${authority}${REPO}`],
      ['extensionTestsPath', `vscode-remote://${authority}${SUITE}`],
      ['skipWelcome', 'true'],
    ];
    const url =
      `http://${authority}/?folder=${encodeURIComponent(workspace)}` +
      `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    return exitCode;
  }

  private extensionHostLog(type: unknown, args: unknown): void {
    // Arrives as console.log's arguments, format string first (mocha's reporter relies on it).
    const text = Array.isArray(args) ? format(...(args as unknown[])) : String(args);
    this.extensionHostOutput += `${text}\n`;
    if (WORKBENCH_CHATTER.test(text)) return;
    const prefix = type === 'error' ? '[error] ' : type === 'warn' ? '[warn] ' : '';
    process.stdout.write(`${prefix}${text}\n`);
  }

  /** "N passing, M failing" from mocha's spec summary, when it got that far. */
  counts(): string | undefined {
    const passing = /^\s*(\d+) passing/m.exec(this.extensionHostOutput)?.[1];
    if (passing === undefined) return undefined;
    const failing = /^\s*(\d+) failing/m.exec(this.extensionHostOutput)?.[1] ?? '0';
    const pending = /^\s*(\d+) pending/m.exec(this.extensionHostOutput)?.[1];
    return `${passing} passing, ${failing} failing${pending ? `, ${pending} pending` : ''}`;
  }

  private async reportFailure(): Promise<void> {
    const page = this.driver.page;
    if (page && !page.isClosed()) {
      try {
        await page.screenshot({ path: path.join(RESULTS, 'failure.png'), fullPage: true });
        log(`screenshot: ${path.join(RESULTS, 'failure.png')}`);
      } catch (err) {
        log(`no failure screenshot: ${errorText(err)}`);
      }
    }
    // The workbench's own logs (extension host, server) help most when the extension misbehaved.
    const logs = path.join(RESULTS, 'logs');
    try {
      copyDir(path.join(this.userData, 'logs'), logs);
      fs.copyFileSync(this.serverLog, path.join(logs, 'code-server.log'));
      if (fs.existsSync(this.browserLog)) {
        fs.copyFileSync(this.browserLog, path.join(logs, 'browser.log'));
      }
      log(`logs: ${logs}`);
    } catch (err) {
      log(`could not copy logs: ${errorText(err)}`);
    }
    const shown = [this.serverLog];
    // The extension host's log has the extension's activation errors and stack traces.
    const sessions = path.join(this.userData, 'logs');
    for (const session of fs.existsSync(sessions) ? fs.readdirSync(sessions).sort() : []) {
      const file = path.join(sessions, session, 'exthost1', 'remoteexthost.log');
      if (fs.existsSync(file)) shown.push(file);
    }
    for (const file of shown) {
      process.stdout.write(
        `----- last ${LOG_TAIL_LINES} lines of ${file} -----\n${tail(file, LOG_TAIL_LINES)}\n`,
      );
    }
    process.stdout.write('-----\n');
  }

  interrupt(): Promise<void> {
    this.interrupted = true;
    return this.cleanup();
  }

  cleanup(): Promise<void> {
    this.cleaning ??= this.doCleanup();
    return this.cleaning;
  }

  private async doCleanup(): Promise<void> {
    this.driver.close();
    await this.reloadAgent?.stop();
    if (this.browser) {
      await Promise.race([this.browser.close().catch(() => undefined), sleep(5_000)]);
    }
    const server = this.server;
    if (server?.pid !== undefined) {
      const pid = server.pid;
      if (server.exitCode === null && server.signalCode === null) {
        const exited = new Promise((r) => server.once('exit', r));
        signal(-pid, 'SIGTERM');
        await Promise.race([exited, sleep(5_000)]);
      }
      signal(-pid, 'SIGKILL');
    }
    for (const pid of markedProcesses(this.marker)) signal(pid, 'SIGKILL');
    if (process.env.OCTASK_E2E_KEEP === '1') {
      log(`kept ${this.root} (OCTASK_E2E_KEEP=1)`);
    } else {
      fs.rmSync(this.root, { recursive: true, force: true });
    }
  }
}

async function main(): Promise<number> {
  const { grep, untrusted, reload } = parseArgs(process.argv.slice(2));
  const codeServer = locateCodeServer();
  if (!fs.existsSync(SUITE)) {
    throw new Error(`${SUITE} is missing; run npm run compile-tests`);
  }
  const run = new Run(grep ?? process.env.OCTASK_E2E_GREP, untrusted === true, reload === true);
  const stop = (sig: NodeJS.Signals, code: number): void => {
    log(`${sig}: stopping`);
    void run.interrupt().finally(() => process.exit(code));
  };
  process.once('SIGINT', () => stop('SIGINT', 130));
  process.once('SIGTERM', () => stop('SIGTERM', 143));
  process.once('SIGHUP', () => stop('SIGHUP', 129));
  let exitCode = 1;
  try {
    exitCode = await run.execute(codeServer);
  } finally {
    await run.cleanup();
  }
  const counts = run.counts();
  log(`vscode suite: exit ${exitCode}${counts ? ` (${counts})` : ''}`);
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[run] ${errorText(err)}\n`);
    process.exit(1);
  },
);
