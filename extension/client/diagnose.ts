import { createServer, connect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as vscode from 'vscode';
import { generateKey } from '../../shared/clusterKey';
import { pskClientOptions, pskServerOptions } from '../../shared/tlsPsk';
import type { ClusterModel } from './clusterModel';
import type { LoadedKey } from './clusterKeyStore';
import type { DispatcherClient } from './dispatcherClient';
import { AGENT_STATUS_LABEL } from './format';
import { readSettings } from './settings';

export interface PskCheck {
  ok: boolean;
  detail: string;
}

/**
 * Whether this runtime can do our TLS-PSK at all: a handshake with a
 * throwaway key over loopback. Desktop VS Code runs on Electron, whose Node
 * is built on BoringSSL rather than OpenSSL, so this is worth proving.
 */
export function checkTlsPsk(timeoutMs = 5000): Promise<PskCheck> {
  const key = generateKey();
  return new Promise((resolve) => {
    let done = false;
    const finish = (result: PskCheck): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      server.close();
      resolve(result);
    };
    const timer = setTimeout(
      () => finish({ ok: false, detail: 'the handshake did not finish' }),
      timeoutMs,
    );
    const server = createServer(pskServerOptions(key), (socket) => socket.end());
    server.on('tlsClientError', (err) => finish({ ok: false, detail: err.message }));
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      const socket = connect({ host: '127.0.0.1', port, ...pskClientOptions(key) }, () => {
        const cipher = socket.getCipher();
        socket.destroy();
        finish({ ok: true, detail: `${cipher.name} over ${socket.getProtocol() ?? 'TLS'}` });
      });
      socket.on('error', (err) => finish({ ok: false, detail: err.message }));
    });
  });
}

/** Builds the Diagnose report as Markdown: runtime, TLS-PSK, key, dispatcher, each agent. */
export async function diagnoseReport(
  client: DispatcherClient,
  model: ClusterModel,
  key: LoadedKey | undefined,
): Promise<string> {
  const settings = readSettings();
  const psk = await checkTlsPsk();
  const lines: string[] = ['# Octask diagnosis', ''];
  const openssl = process.versions.openssl ? `OpenSSL ${process.versions.openssl}` : 'no OpenSSL';
  lines.push(
    `- VS Code ${vscode.version}, extension host Node ${process.versions.node} (${openssl}${process.versions.electron ? `, Electron ${process.versions.electron}` : ''})`,
  );
  lines.push(
    psk.ok
      ? `- TLS-PSK in this VS Code's runtime: **works** (${psk.detail})`
      : `- TLS-PSK in this VS Code's runtime: **does not work** (${psk.detail}). Set \`octask.dispatcher.nodePath\` to a system Node (18 or later) so the dispatcher runs outside VS Code's runtime.`,
  );
  lines.push(
    `- Dispatcher: ${client.state}${client.lastError ? ` (${client.lastError})` : ''}, runs on ${settings.nodePath ?? "VS Code's own Node"}`,
  );
  lines.push(
    key
      ? `- Cluster key: id \`${key.key.id}\`, from ${key.source}. Agents must show the same key id in their "listening" log line.`
      : '- Cluster key: **none**. Run "Octask: Set Cluster Key".',
  );
  lines.push(
    `- Discovery by mDNS: ${settings.discovery ? 'on' : 'off'}; listed agents: ${settings.agents.length ? settings.agents.map((a) => `\`${a}\``).join(', ') : 'none'}`,
  );
  lines.push('', '## Agents', '');
  const agents = [...model.agents.values()];
  if (agents.length === 0) {
    lines.push(
      'None known. Add one by address ("Octask: Add Agent by Address") — mDNS does not cross subnets and phones often drop multicast.',
    );
  }
  for (const a of agents) {
    const reachable = a.status === 'online' || a.status === 'busy';
    lines.push(
      `- **${a.name}** \`${a.address}\` (${a.source}): ${AGENT_STATUS_LABEL[a.status]}${reachable ? `, ${a.os}/${a.arch}, agent ${a.version}, ${a.running}/${a.maxJobs} slots` : ''}`,
    );
    if (!reachable) lines.push(`  - why: ${whyNot(a.status, a.lastError)}`);
  }
  return lines.join('\n') + '\n';
}

/** What to do about an agent that is not online; what it said goes on a line of its own. */
function whyNot(status: string, err: { code: string; message: string } | null): string {
  const said = err ? `\n  - it said: ${err.code}: ${err.message}` : '';
  switch (status) {
    case 'wrong_key':
      return `it holds another cluster key. Copy this key to it, or set the agent's key here.${said}`;
    case 'version_mismatch':
      return `it speaks another protocol version. Update the older side.${said}`;
    case 'offline':
      return `no connection. Is the agent running, and is the port open in its firewall?${said}`;
    default:
      return err ? `${err.code}: ${err.message}` : 'no answer yet';
  }
}

export const DIAGNOSIS_SCHEME = 'octask-diagnosis';

/**
 * Shows the report as a read-only document (a virtual one: nothing to save,
 * no "save changes?" on close), refreshed in place on each Diagnose.
 */
export class DiagnosisDocument implements vscode.TextDocumentContentProvider, vscode.Disposable {
  static readonly uri = vscode.Uri.from({ scheme: DIAGNOSIS_SCHEME, path: '/Octask diagnosis.md' });
  private text = '';
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  provideTextDocumentContent(): string {
    return this.text;
  }

  async show(text: string): Promise<vscode.TextDocument> {
    this.text = text;
    this.changed.fire(DiagnosisDocument.uri);
    const doc = await vscode.workspace.openTextDocument(DiagnosisDocument.uri);
    if (doc.languageId !== 'markdown')
      await vscode.languages.setTextDocumentLanguage(doc, 'markdown');
    await vscode.window.showTextDocument(doc, { preview: false });
    return doc;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
