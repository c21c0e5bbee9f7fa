import * as vscode from 'vscode';

/**
 * vscode-languageclient traces JSON-RPC only when its trace channel's log
 * level is Trace, a level users set per channel by hand. This channel makes
 * the `octask.trace.server` setting alone enough: its level follows the
 * setting, and the traffic lands in the Octask log as ordinary lines.
 */
export class SettingTraceChannel implements vscode.LogOutputChannel {
  readonly name = 'Octask (JSON-RPC trace)';
  private readonly levelChanged = new vscode.EventEmitter<vscode.LogLevel>();
  readonly onDidChangeLogLevel = this.levelChanged.event;
  private level: vscode.LogLevel;
  private readonly sub: vscode.Disposable;

  constructor(private readonly log: vscode.LogOutputChannel) {
    this.level = SettingTraceChannel.fromSetting();
    this.sub = vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('octask.trace.server')) return;
      const next = SettingTraceChannel.fromSetting();
      if (next === this.level) return;
      this.level = next;
      this.levelChanged.fire(next);
    });
  }

  private static fromSetting(): vscode.LogLevel {
    const value = vscode.workspace.getConfiguration('octask').get<string>('trace.server', 'off');
    return value && value !== 'off' ? vscode.LogLevel.Trace : vscode.LogLevel.Info;
  }

  get logLevel(): vscode.LogLevel {
    return this.level;
  }

  trace(message: string): void {
    this.log.info(`[rpc] ${message}`);
  }
  debug(message: string): void {
    this.log.debug(message);
  }
  info(message: string): void {
    this.log.info(message);
  }
  warn(message: string): void {
    this.log.warn(message);
  }
  error(error: string | Error): void {
    this.log.error(error);
  }
  append(value: string): void {
    this.log.append(value);
  }
  appendLine(value: string): void {
    this.log.appendLine(value);
  }
  replace(value: string): void {
    this.log.replace(value);
  }
  clear(): void {
    this.log.clear();
  }
  show(preserveFocus?: boolean): void;
  show(column?: vscode.ViewColumn, preserveFocus?: boolean): void;
  show(): void {
    this.log.show(true);
  }
  hide(): void {
    this.log.hide();
  }
  dispose(): void {
    this.sub.dispose();
    this.levelChanged.dispose();
  }
}
