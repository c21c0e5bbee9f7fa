/**
 * Lets e2e tests act on the VS Code window as a person would. The calls go to the driver that
 * test/vscode/run.ts serves on loopback, which performs them in the page with Playwright.
 */
import * as http from 'node:http';
import type { DriverAction, DriverReply } from '../harness/pageActions';

/** Longer than any single action may wait in the driver, so its own error comes back first. */
const REQUEST_TIMEOUT_MS = 120_000;

function send(action: DriverAction): Promise<string | undefined> {
  const base = process.env.OCTASK_E2E_DRIVER;
  if (!base) {
    return Promise.reject(
      new Error(
        `ui.${action.action}: UI driving needs the code-server harness (npm run test:vscode); ` +
          'OCTASK_E2E_DRIVER is not set',
      ),
    );
  }
  const body = JSON.stringify(action);
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL('/action', base),
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          let reply: DriverReply;
          try {
            reply = JSON.parse(Buffer.concat(chunks).toString('utf8')) as DriverReply;
          } catch {
            reject(
              new Error(`ui.${action.action}: the driver answered ${res.statusCode} with no JSON`),
            );
            return;
          }
          if (reply.ok) resolve(reply.value);
          else reject(new Error(`ui.${action.action}: ${reply.error}`));
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`ui.${action.action}: no answer in ${REQUEST_TIMEOUT_MS} ms`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}

export const ui = {
  /** Runs a command from the palette by its full title, e.g. "Octask: Run on cluster". */
  async command(title: string): Promise<void> {
    await send({ action: 'command', title });
  },
  /** Accepts the row of the open quick pick whose label contains `label`. */
  async pick(label: string): Promise<void> {
    await send({ action: 'pick', label });
  },
  /** Types on the keyboard into whatever has focus. */
  async type(text: string): Promise<void> {
    await send({ action: 'type', text });
  },
  /** Presses a key or chord in Playwright's notation ("Enter", "Control+Shift+P"). */
  async press(key: string): Promise<void> {
    await send({ action: 'press', key });
  },
  /** Replaces the open input box's (or quick pick's) text and presses Enter. */
  async input(text: string): Promise<void> {
    await send({ action: 'input', text });
  },
  /** Shows a view container (activity bar) or a view by its title, e.g. "Octask". */
  async openView(title: string): Promise<void> {
    await send({ action: 'openView', title });
  },
  /** Saves the whole window to test-results/vscode/<name>.png; resolves with the file's path. */
  async screenshot(name: string): Promise<string> {
    return (await send({ action: 'screenshot', name })) ?? '';
  },
  /** Clicks the first visible element matching a CSS selector whose text contains `text`. */
  async click(selector: string, text: string): Promise<void> {
    await send({ action: 'click', selector, text });
  },
  /** Where each visible element matching a CSS selector lies on the page, top to bottom, with its text. */
  async boxes(selector: string): Promise<Array<{ top: number; bottom: number; text: string }>> {
    return JSON.parse((await send({ action: 'boxes', selector })) ?? '[]') as Array<{
      top: number;
      bottom: number;
      text: string;
    }>;
  },
  /** The innerText of the first element matching a CSS selector in the workbench. */
  async textOf(selector: string): Promise<string> {
    return (await send({ action: 'textOf', selector })) ?? '';
  },
};
