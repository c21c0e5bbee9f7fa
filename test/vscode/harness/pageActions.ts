/** What the loopback driver does on the page: the command palette, quick picks, views, screenshots. */
import * as path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { RESULTS, escapeRegExp, sleep } from './util';

/** How long one driver action may wait for the UI to get into the state it needs. */
export const ACTION_TIMEOUT_MS = 20_000;
/** How long an accepted quick input gets to close or change before we stop waiting for it. */
const SETTLE_TIMEOUT_MS = 5_000;

/** What the suite's `ui` sends to POST /action. */
export type DriverAction =
  | { action: 'command'; title: string }
  | { action: 'pick'; label: string }
  | { action: 'type'; text: string }
  | { action: 'press'; key: string }
  | { action: 'input'; text: string }
  | { action: 'openView'; title: string }
  | { action: 'screenshot'; name: string }
  | { action: 'textOf'; selector: string }
  | { action: 'click'; selector: string; text: string }
  | { action: 'boxes'; selector: string };

export type DriverReply = { ok: true; value?: string } | { ok: false; error: string };

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

export async function screenshot(page: Page, name: string): Promise<string> {
  const file = path.join(RESULTS, `${name.replace(/[^\w.-]+/g, '_')}.png`);
  // Let pending layout and paint land so the picture shows the state the test just reached.
  await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

export function parseAction(body: unknown): DriverAction {
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
    case 'click':
      return { action: 'click', selector: str('selector'), text: str('text') };
    case 'boxes':
      return { action: 'boxes', selector: str('selector') };
    default:
      throw new Error(`unknown action ${JSON.stringify(b.action)}`);
  }
}

export async function perform(page: Page, a: DriverAction): Promise<string | undefined> {
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
    case 'click': {
      const target = page
        .locator(a.selector)
        .filter({ visible: true, hasText: new RegExp(escapeRegExp(a.text)) })
        .first();
      try {
        await target.waitFor({ state: 'visible', timeout: ACTION_TIMEOUT_MS });
      } catch {
        throw new Error(`nothing visible matches ${a.selector} with text "${a.text}"`);
      }
      await target.click({ timeout: ACTION_TIMEOUT_MS });
      return undefined;
    }
    case 'boxes': {
      const boxes = [];
      for (const el of await page.locator(a.selector).filter({ visible: true }).all()) {
        const box = await el.boundingBox();
        if (box) boxes.push({ top: box.y, bottom: box.y + box.height, text: await el.innerText() });
      }
      return JSON.stringify(boxes);
    }
  }
}
