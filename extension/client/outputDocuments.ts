import * as vscode from 'vscode';
import type { ClusterModel } from './clusterModel';
import { outputTitle } from './format';

export const OUTPUT_SCHEME = 'octask-output';

/**
 * The read-only document that shows a task's output:
 * `octask-output:/<task id>/<run label> #<shard> (<agent>).log`; the tab shows the last part.
 */
export function outputUri(taskId: string, title: string): vscode.Uri {
  return vscode.Uri.from({ scheme: OUTPUT_SCHEME, path: `/${taskId}/${title}` });
}

function taskIdOf(uri: vscode.Uri): string {
  return uri.path.split('/')[1] ?? '';
}

/**
 * Serves task output as documents that follow the task live and stay after it
 * ends (as long as the editor keeps the task, see FINISHED_TASKS_KEPT).
 */
export class OutputDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly subs: Array<{ dispose(): void }>;

  constructor(private readonly model: ClusterModel) {
    this.subs = [
      model.onOutput.on((e) => this.touch(e.task)),
      model.onTask.on((t) => this.touch(t.id)),
    ];
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    const id = taskIdOf(uri);
    const task = this.model.tasks.get(id);
    const text = this.model.outputs.get(id)?.text() ?? '';
    if (!task) return text || `(the output of task ${id} is no longer kept)\n`;
    const footer =
      task.status === 'pending'
        ? '\n[queued]\n'
        : task.status === 'running'
          ? ''
          : `\n[${task.status}${task.exitCode !== null ? `, exit ${task.exitCode}` : ''}${task.error ? `: ${task.error.message}` : ''}]\n`;
    return text + footer;
  }

  async show(taskId: string): Promise<void> {
    const task = this.model.tasks.get(taskId);
    const title = task
      ? outputTitle(this.model.labelOf(task.group, task.command), task)
      : 'output.log';
    const uri = outputUri(taskId, title);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { preview: false });
  }

  /** Per output chunk: only marks the task; the open documents are looked at once per redraw. */
  private touch(taskId: string): void {
    this.dirty.add(taskId);
    // Output comes in many small chunks: redraw open documents at most 5 times a second.
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      for (const d of vscode.workspace.textDocuments) {
        if (d.uri.scheme === OUTPUT_SCHEME && this.dirty.has(taskIdOf(d.uri)))
          this.changed.fire(d.uri);
      }
      this.dirty.clear();
    }, 200);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.subs) s.dispose();
    this.changed.dispose();
  }
}
