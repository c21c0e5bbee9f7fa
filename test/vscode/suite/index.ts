/**
 * The extensionTestsPath module: VS Code's extension host calls run() once the extension under
 * development is loaded, and ends the test session when the promise settles.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

export function run(): Promise<void> {
  const mocha = new Mocha({
    ui: 'bdd',
    color: false,
    timeout: 60_000,
    forbidOnly: true,
    reporter: 'spec',
  });
  const grep = process.env.OCTASK_E2E_GREP;
  if (grep) mocha.grep(grep);
  // Restricted Mode (run.js --untrusted) has a suite of its own.
  const suffix =
    process.env.OCTASK_E2E_UNTRUSTED === '1'
      ? '.untrusted-e2e.js'
      : process.env.OCTASK_E2E_RELOAD
        ? '.reload-e2e.js'
        : '.e2e.js';
  const files = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith(suffix))
    .sort();
  if (files.length === 0) return Promise.reject(new Error(`no *${suffix} files in ${__dirname}`));
  for (const f of files) mocha.addFile(path.join(__dirname, f));

  return new Promise((resolve, reject) => {
    let ran = 0;
    try {
      const runner = mocha.run((failures) => {
        if (failures > 0) reject(new Error(`${failures} tests failed`));
        // A grep that matches nothing, or a suite that failed to register, must not pass.
        else if (ran === 0) reject(new Error(`no tests ran${grep ? ` (grep: ${grep})` : ''}`));
        else resolve();
      });
      runner.on('test end', (test) => {
        if (test.state === 'passed' || test.state === 'failed') ran++;
      });
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}
