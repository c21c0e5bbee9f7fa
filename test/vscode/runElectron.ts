/**
 * Runs test/vscode/suite in desktop VS Code via @vscode/test-electron. For desktops with
 * internet: it downloads a VS Code build from Microsoft at run time, which CI machines here
 * cannot, so CI uses run.ts (code-server) instead. The `ui` driver exists only under run.ts, so
 * the tests that drive the UI fail here, loudly, by design.
 *
 *   npm run test:electron [-- --grep <pattern>]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';

const REPO = path.resolve(__dirname, '..', '..', '..');
const FIXTURE = path.join(REPO, 'test', 'vscode', 'workspace');

function grepArg(argv: string[]): string | undefined {
  const i = argv.findIndex((a) => a === '--grep' || a === '-g');
  if (i >= 0) return argv[i + 1];
  return argv.find((a) => a.startsWith('--grep='))?.slice('--grep='.length);
}

async function main(): Promise<number> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'octask-electron-'));
  // The tests change the workspace (settings, files); they get a copy, never the fixture.
  const workspace = path.join(root, 'workspace');
  if (fs.existsSync(FIXTURE)) fs.cpSync(FIXTURE, workspace, { recursive: true });
  else fs.mkdirSync(workspace);
  const results = path.join(REPO, 'test-results', 'vscode');
  fs.mkdirSync(results, { recursive: true });
  const grep = grepArg(process.argv.slice(2)) ?? process.env.OCTASK_E2E_GREP;
  try {
    return await runTests({
      version: process.env.OCTASK_VSCODE_VERSION ?? 'stable',
      extensionDevelopmentPath: REPO,
      extensionTestsPath: path.join(REPO, 'out', 'test', 'vscode', 'suite', 'index.js'),
      launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust'],
      extensionTestsEnv: {
        OCTASK_E2E_RESULTS: results,
        ...(grep ? { OCTASK_E2E_GREP: grep } : {}),
      },
    });
  } finally {
    if (process.env.OCTASK_E2E_KEEP !== '1') fs.rmSync(root, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`test:electron failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
