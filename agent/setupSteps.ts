import { readFile, writeFile } from 'node:fs/promises';
import { ErrorCode, OctaskError } from '../shared/errors';
import type { OutputStream, SetupStep } from '../shared/protocol';
import type { Containment } from './runner';
import { TaskProcess } from './runner';
import type { WorkspaceCopies } from './workspaceCopy';
import { SETUP_RECORD } from './workspaceCopy';

/** How a setup command is run: the task's shell, environment and limits. */
export interface SetupRun {
  cwd: string;
  env: NodeJS.ProcessEnv;
  shell: string;
  timeoutMs: number;
  killGraceMs: number;
  /** What ends the processes the setup leaves behind, as for a task (taskContainment.ts). */
  containment?: () => Containment;
  /** The setup's output, shown as the task's. */
  output(stream: OutputStream, data: Buffer): void;
}

/** command → the key it last succeeded for. */
type Record_ = Record<string, string>;

/**
 * Setup commands (`npm ci`) run in a workspace copy once per key: the
 * dispatcher's digest of the key files. Setups of one workspace run one at
 * a time, so shards arriving together wait for one run; a success is
 * recorded beside the copy (and forgotten when the copy is laid out clean),
 * a failure is not, so the next task tries again.
 */
export class SetupSteps {
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly copies: WorkspaceCopies) {}

  /** Resolves once `setup` has succeeded in the copy; rejects with E_SETUP_FAILED. */
  ensure(workspace: string, setup: SetupStep, run: SetupRun): Promise<void> {
    const previous = this.chains.get(workspace) ?? Promise.resolve();
    const mine = previous.catch(() => undefined).then(() => this.runOnce(workspace, setup, run));
    this.chains.set(workspace, mine);
    const forget = (): void => {
      if (this.chains.get(workspace) === mine) this.chains.delete(workspace);
    };
    mine.then(forget, forget);
    return mine;
  }

  private async runOnce(workspace: string, setup: SetupStep, run: SetupRun): Promise<void> {
    const path = this.copies.recordPath(workspace, SETUP_RECORD);
    const record = await readRecord(path);
    if (record[setup.command] === setup.key) return;
    const say = (text: string): void => run.output('stderr', Buffer.from(`octask: ${text}\n`));
    say(`setup: ${setup.command}`);
    const result = await runCommand(setup.command, run);
    if (result !== null) {
      say(`setup failed: ${result}`);
      throw new OctaskError(ErrorCode.SetupFailed, `setup \`${setup.command}\` ${result}`);
    }
    // Read again: another setup command of this workspace may have finished meanwhile.
    await writeFile(
      path,
      JSON.stringify({ ...(await readRecord(path)), [setup.command]: setup.key }),
    );
  }
}

/** Runs the command in its own process group; resolves with why it failed, or null. */
function runCommand(command: string, run: SetupRun): Promise<string | null> {
  return new Promise((resolve) => {
    const proc = new TaskProcess(
      {
        command,
        env: run.env,
        cwd: run.cwd,
        shell: run.shell,
        timeoutMs: run.timeoutMs,
        killGraceMs: run.killGraceMs,
        containment: run.containment?.(),
      },
      {
        started: () => undefined,
        output: (stream, data) => run.output(stream, data),
        spawnFailed: (message) => resolve(message),
        ended: (r) =>
          resolve(
            r.outcome === 'completed'
              ? null
              : r.outcome === 'timed_out'
                ? 'timed out'
                : `exited with ${r.exitCode ?? r.signal}`,
          ),
      },
    );
    proc.start();
  });
}

async function readRecord(path: string): Promise<Record_> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record_) : {};
  } catch {
    return {};
  }
}
