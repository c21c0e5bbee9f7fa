/**
 * Runs test/vscode/suite in a real VS Code: code-server 4.100.3 (VS Code 1.100.3 as a web server)
 * opened in headless Chromium, with this repo as the extension under development. The tests run
 * in code-server's extension host; a loopback "driver" lets them act on the page as a person
 * would (command palette, quick picks, views, screenshots). See README.md in this folder.
 *
 *   node out/test/vscode/run.js [--grep <pattern>]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { format } from 'node:util';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';

const CODE_SERVER_VERSION = '4.100.3';
const REPO = path.resolve(__dirname, '..', '..', '..');
const RESULTS = path.join(REPO, 'test-results', 'vscode');
const SUITE = path.join(REPO, 'out', 'test', 'vscode', 'suite', 'index.js');
const FIXTURE = path.join(REPO, 'test', 'vscode', 'workspace');
const CHROMIUM = process.env.OCTASK_CHROMIUM ?? '/usr/bin/chromium';
const RUN_TIMEOUT_MS = Number(process.env.OCTASK_E2E_TIMEOUT_MS ?? 10 * 60_000);
/** How long one driver action may wait for the UI to get into the state it needs. */
const ACTION_TIMEOUT_MS = 20_000;
/** How long an accepted quick input gets to close or change before we stop waiting for it. */
const SETTLE_TIMEOUT_MS = 5_000;
const LOG_TAIL_LINES = 80;
/** The workbench logs through the same channel as the tests; these lines would bury their output
 * (they stay in browser.log). */
const WORKBENCH_CHATTER =
  /^(Resolving connection token|Resolved connection token|Creating a socket|Ignoring fetching additional builtin|Updating additional builtin|\[Service Worker\]|ChatSessionStore:)/;

/** What the suite's `ui` sends to POST /action. */
export type DriverAction =
  | { action: 'command'; title: string }
  | { action: 'pick'; label: string }
  | { action: 'type'; text: string }
  | { action: 'press'; key: string }
  | { action: 'input'; text: string }
  | { action: 'openView'; title: string }
  | { action: 'screenshot'; name: string }
  | { action: 'textOf'; selector: string };

export type DriverReply = { ok: true; value?: string } | { ok: false; error: string };

// ---------------------------------------------------------------------------------------------
// Small helpers

function log(message: string): void {
  process.stdout.write(`[run] ${message}\n`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(cannot read ${file}: ${errorText(err)})`;
  }
}

function freePort(): Promise<number> {
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

function httpAnswers(port: number): Promise<boolean> {
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

function parseArgs(argv: string[]): { grep?: string } {
  const options: { grep?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--grep' || arg === '-g') {
      const pattern = argv[++i];
      if (pattern === undefined) throw new Error(`${arg} needs a pattern`);
      options.grep = pattern;
    } else if (arg.startsWith('--grep=')) {
      options.grep = arg.slice('--grep='.length);
    } else {
      throw new Error(
        `unknown argument "${arg}"; usage: node out/test/vscode/run.js [--grep <pattern>]`,
      );
    }
  }
  return options;
}

function locateCodeServer(): string {
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

function copyDir(from: string, to: string): void {
  if (fs.existsSync(from)) fs.cpSync(from, to, { recursive: true });
  else fs.mkdirSync(to, { recursive: true });
}

/** Processes that inherited this run's marker: code-server, its extension host and whatever the
 * tests started from there, including those that left code-server's process group (setsid). */
function markedProcesses(marker: string): number[] {
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

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

// ---------------------------------------------------------------------------------------------
// Driving the page

const QUICK_INPUT = '.quick-input-widget';
const QUICK_INPUT_BOX = `${QUICK_INPUT} .quick-input-box input`;
const QUICK_ROW = `${QUICK_INPUT} .quick-input-list .monaco-list-row`;
// A row's second line (detail) has a label too; the item's label is in the first.
const ROW_LABEL = '.quick-input-list-row:first-child .label-name';

async function quickInputVisible(page: Page): Promise<boolean> {
  return page.locator(QUICK_INPUT).isVisible();
}

/**
 * What the quick input shows, to tell when an accepted input has closed or moved on. Leaves out
 * the message line: validation feedback lands there asynchronously while nothing was accepted.
 */
async function quickInputSnapshot(page: Page): Promise<string> {
  const widget = page.locator(QUICK_INPUT);
  if (!(await widget.isVisible())) return 'hidden';
  const box = page.locator(QUICK_INPUT_BOX);
  const parts = await Promise.all([
    widget.locator('.quick-input-title').allTextContents(),
    box.getAttribute('placeholder', { timeout: 1_000 }),
    box.inputValue({ timeout: 1_000 }),
    page.locator(`${QUICK_ROW} ${ROW_LABEL}`).allTextContents(),
  ]);
  return JSON.stringify(parts);
}

/** Resolves true once the quick input differs from `before` (typically: closed). */
async function quickInputChanged(page: Page, before: string): Promise<boolean> {
  const end = Date.now() + SETTLE_TIMEOUT_MS;
  while (Date.now() < end) {
    try {
      if ((await quickInputSnapshot(page)) !== before) return true;
    } catch {
      // Mid re-render; look again.
    }
    await sleep(50);
  }
  return false;
}

async function visibleRowLabels(page: Page): Promise<string> {
  const labels = await page.locator(`${QUICK_ROW} ${ROW_LABEL}`).allTextContents();
  return labels.length ? labels.map((l) => l.trim()).join(' | ') : '(none)';
}

async function waitForRow(page: Page, label: RegExp, what: string): Promise<Locator> {
  const row = page
    .locator(QUICK_ROW)
    .filter({ has: page.locator(ROW_LABEL, { hasText: label }) })
    .first();
  try {
    await row.waitFor({ state: 'visible', timeout: ACTION_TIMEOUT_MS });
  } catch {
    throw new Error(`no quick pick row ${what}; rows shown: ${await visibleRowLabels(page)}`);
  }
  return row;
}

/** Accepts a row: Enter when the list already has it focused, else a click (which accepts too). */
async function acceptRow(page: Page, row: Locator): Promise<void> {
  const before = await quickInputSnapshot(page);
  const classes = (await row.getAttribute('class')) ?? '';
  if (/\bfocused\b/.test(classes)) await page.locator(QUICK_INPUT_BOX).press('Enter');
  else await row.click({ timeout: ACTION_TIMEOUT_MS });
  await quickInputChanged(page, before);
}

async function waitForQuickInput(page: Page): Promise<Locator> {
  const box = page.locator(QUICK_INPUT_BOX);
  try {
    await box.waitFor({ state: 'visible', timeout: ACTION_TIMEOUT_MS });
  } catch {
    throw new Error(`no quick input opened within ${ACTION_TIMEOUT_MS} ms`);
  }
  return box;
}

async function closeQuickInput(page: Page): Promise<void> {
  if (!(await quickInputVisible(page))) return;
  await page.locator(QUICK_INPUT_BOX).press('Escape');
  await page.locator(QUICK_INPUT).waitFor({ state: 'hidden', timeout: ACTION_TIMEOUT_MS });
}

/** Keyboard events go to the focused frame; a focused webview would swallow F1. */
async function focusWorkbench(page: Page): Promise<void> {
  await page.evaluate(
    'void (document.activeElement && document.activeElement.tagName === "IFRAME" && document.activeElement.blur())',
  );
}

/** Opens quick access (empty prefix) and fills it with `value`, e.g. ">View: Toggle Zen Mode". */
async function openQuickAccess(page: Page, value: string): Promise<Locator> {
  await closeQuickInput(page);
  await focusWorkbench(page);
  const box = page.locator(QUICK_INPUT_BOX);
  // F1 is the palette everywhere; Ctrl+Shift+P in case an editor or terminal keeps F1 for itself.
  for (const key of ['F1', 'Control+Shift+P']) {
    await page.keyboard.press(key);
    try {
      await box.waitFor({ state: 'visible', timeout: 3_000 });
      await box.fill(value);
      return box;
    } catch {
      // Try the next key.
    }
  }
  throw new Error('the command palette did not open on F1 or Ctrl+Shift+P');
}

async function runCommand(page: Page, title: string): Promise<void> {
  await openQuickAccess(page, `>${title}`);
  const row = await waitForRow(page, new RegExp(`^\\s*${escapeRegExp(title)}\\s*$`), `"${title}"`);
  await acceptRow(page, row);
}

async function pick(page: Page, label: string): Promise<void> {
  const matcher = new RegExp(escapeRegExp(label));
  // A notification (showInformationMessage with items) asks with buttons rather than a quick pick;
  // accept those too. Modal dialogs never show: the workbench refuses them while tests run.
  const button = page
    .locator('.notification-toast a.monaco-button')
    .filter({ hasText: matcher })
    .first();
  const box = page.locator(QUICK_INPUT_BOX);
  const end = Date.now() + ACTION_TIMEOUT_MS;
  for (;;) {
    if (await box.isVisible()) break;
    if (await button.isVisible()) {
      await button.click({ timeout: ACTION_TIMEOUT_MS });
      return;
    }
    if (Date.now() > end) {
      throw new Error(`no quick input or notification offering "${label}" appeared`);
    }
    await sleep(50);
  }
  const shown = page
    .locator(QUICK_ROW)
    .filter({ has: page.locator(ROW_LABEL, { hasText: matcher }) })
    .first();
  // Typing into the filter would change the value the extension sees, so only filter when the
  // row is not already on screen (long or still-loading lists).
  if (!(await shown.isVisible())) await box.fill(label);
  const row = await waitForRow(page, matcher, `containing "${label}"`);
  await acceptRow(page, row);
}

async function input(page: Page, text: string): Promise<void> {
  const box = await waitForQuickInput(page);
  await box.fill(text);
  const before = await quickInputSnapshot(page);
  await box.press('Enter');
  if (await quickInputChanged(page, before)) return;
  // Still open and unchanged: most likely the extension's validation refused the text.
  const message = (await page.locator(`${QUICK_INPUT} .quick-input-message`).allInnerTexts())
    .join(' ')
    .trim();
  throw new Error(`the quick input did not accept "${text}"${message ? `: ${message}` : ''}`);
}

async function openView(page: Page, title: string): Promise<void> {
  // Activity bar entries carry the container's title (plus a keybinding) in their aria-label.
  const item = page
    .locator('.part.activitybar li.action-item')
    .filter({ has: page.locator(`a.action-label[aria-label^="${title.replace(/"/g, '\\"')}"]`) })
    .first();
  // By the time tests run, every contributed container is on the activity bar: no need to wait.
  if (!(await item.isVisible())) return openViewByQuickAccess(page, title);
  // Clicking the active container would collapse the side bar instead.
  if ((await item.getAttribute('aria-selected')) !== 'true') await item.click();
  await page
    .locator('.part.sidebar .composite.title')
    .filter({ hasText: new RegExp(escapeRegExp(title), 'i') })
    .waitFor({ state: 'visible', timeout: ACTION_TIMEOUT_MS });
}

/** For views inside a container, or containers not on the activity bar: "view " quick access. */
async function openViewByQuickAccess(page: Page, title: string): Promise<void> {
  await openQuickAccess(page, `view ${title}`);
  const label = new RegExp(`^\\s*${escapeRegExp(title)}`);
  const row = await waitForRow(page, label, `for a view or container named "${title}"`);
  await acceptRow(page, row);
  // Shown means: an expanded section, a side bar titled so, or the active panel tab.
  await page
    .locator(
      '.pane-header.expanded, .part.sidebar .composite.title, .part.panel .action-item.checked',
    )
    .filter({ hasText: new RegExp(escapeRegExp(title), 'i') })
    .first()
    .waitFor({ state: 'visible', timeout: ACTION_TIMEOUT_MS });
}

async function screenshot(page: Page, name: string): Promise<string> {
  const file = path.join(RESULTS, `${name.replace(/[^\w.-]+/g, '_')}.png`);
  // Let pending layout and paint land so the picture shows the state the test just reached.
  await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

function parseAction(body: unknown): DriverAction {
  if (typeof body !== 'object' || body === null) throw new Error('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const str = (key: string): string => {
    const value = b[key];
    if (typeof value !== 'string') throw new Error(`"${String(b.action)}" needs a string "${key}"`);
    return value;
  };
  switch (b.action) {
    case 'command':
      return { action: 'command', title: str('title') };
    case 'pick':
      return { action: 'pick', label: str('label') };
    case 'type':
      return { action: 'type', text: str('text') };
    case 'press':
      return { action: 'press', key: str('key') };
    case 'input':
      return { action: 'input', text: str('text') };
    case 'openView':
      return { action: 'openView', title: str('title') };
    case 'screenshot':
      return { action: 'screenshot', name: str('name') };
    case 'textOf':
      return { action: 'textOf', selector: str('selector') };
    default:
      throw new Error(`unknown action ${JSON.stringify(b.action)}`);
  }
}

async function perform(page: Page, a: DriverAction): Promise<string | undefined> {
  switch (a.action) {
    case 'command':
      await runCommand(page, a.title);
      return undefined;
    case 'pick':
      await pick(page, a.label);
      return undefined;
    case 'type':
      await page.keyboard.type(a.text);
      return undefined;
    case 'press':
      await page.keyboard.press(a.key);
      return undefined;
    case 'input':
      await input(page, a.text);
      return undefined;
    case 'openView':
      await openView(page, a.title);
      return undefined;
    case 'screenshot':
      return screenshot(page, a.name);
    case 'textOf': {
      // Visible only: the workbench keeps hidden copies around (the last quick pick's rows), and
      // innerText of a hidden element is its raw textContent, <style> blocks included.
      const target = page.locator(a.selector).filter({ visible: true }).first();
      await target.waitFor({ state: 'visible', timeout: ACTION_TIMEOUT_MS });
      return target.innerText();
    }
  }
}

class Driver {
  page: Page | undefined;
  private server = http.createServer((req, res) => this.handle(req, res));
  // One action at a time: two tests' keystrokes must not interleave in the same quick input.
  private queue: Promise<unknown> = Promise.resolve();
  private failures = 0;
  private closed = false;

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    const address = this.server.address();
    if (!address || typeof address !== 'object') throw new Error('the driver has no port');
    return address.port;
  }

  close(): void {
    this.closed = true;
    this.server.closeAllConnections();
    this.server.close();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const reply = (status: number, body: DriverReply): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/action') {
      reply(404, { ok: false, error: 'only POST /action' });
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let action: DriverAction;
      try {
        action = parseAction(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reply(400, { ok: false, error: errorText(err) });
        return;
      }
      const done = this.queue.then(() => this.run(action));
      this.queue = done;
      void done.then((body) => reply(200, body));
    });
  }

  private async run(action: DriverAction): Promise<DriverReply> {
    const page = this.page;
    if (!page) return { ok: false, error: 'the page is not open yet' };
    try {
      const value = await perform(page, action);
      return value === undefined ? { ok: true } : { ok: true, value };
    } catch (err) {
      const error = `${action.action} ${JSON.stringify(action)}: ${errorText(err)}`;
      // Shutting down closed the page under the action: nothing worth reporting.
      if (this.closed) return { ok: false, error };
      log(`driver: ${error}`);
      // What the screen looked like when the action gave up is usually the whole story.
      const name = `action-failed-${++this.failures}-${action.action}`;
      try {
        log(`driver: screenshot ${await screenshot(page, name)}`);
      } catch {
        // The page is gone; the error says enough.
      }
      return { ok: false, error };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The run

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

  constructor(private readonly grep: string | undefined) {}

  async execute(codeServer: string): Promise<number> {
    const started = Date.now();
    const workspace = path.join(this.root, 'workspace');
    let timer: NodeJS.Timeout | undefined;
    try {
      this.prepareDirs(workspace);
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
    };
    fs.writeFileSync(
      path.join(this.userData, 'User', 'settings.json'),
      JSON.stringify(settings, null, 2),
    );
    copyDir(FIXTURE, workspace);
    fs.mkdirSync(RESULTS, { recursive: true });
    for (const f of fs.readdirSync(RESULTS)) {
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
    const args = [
      codeServer,
      '--auth',
      'none',
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
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
  const { grep } = parseArgs(process.argv.slice(2));
  const codeServer = locateCodeServer();
  if (!fs.existsSync(SUITE)) {
    throw new Error(`${SUITE} is missing; run npm run compile-tests`);
  }
  const run = new Run(grep ?? process.env.OCTASK_E2E_GREP);
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
