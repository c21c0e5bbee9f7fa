/** The loopback HTTP server the suite's `ui` calls; it performs each action on the page in turn. */
import * as http from 'node:http';
import type { Page } from 'playwright-core';
import type { DriverAction, DriverReply } from './pageActions';
import { parseAction, perform, screenshot } from './pageActions';
import { errorText, log } from './util';

export class Driver {
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
