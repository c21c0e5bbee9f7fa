import { StringDecoder } from 'node:string_decoder';
import { PathRewriter } from '../shared/pathRewrite';

/**
 * Maps the agent's copy paths in a task's output back to the local
 * workspace, as the task terminal does, so a terminal can link them. Bytes
 * in, bytes out; a path split across chunks is held back until it is whole.
 */
export class OutputPaths {
  private readonly streams = new Map<
    string,
    { root: string; decoder: StringDecoder; rewriter: PathRewriter }
  >();

  constructor(private readonly localRoot: string) {}

  /** `data` with the agent's root (`agentRoot`, once the task started) replaced by the local one. */
  map(task: string, stream: string, agentRoot: string | undefined, data: Uint8Array): Uint8Array {
    if (!agentRoot) return data;
    const key = `${task}\0${stream}`;
    let s = this.streams.get(key);
    if (!s || s.root !== agentRoot) {
      s = {
        root: agentRoot,
        decoder: new StringDecoder('utf8'),
        rewriter: new PathRewriter(agentRoot, this.localRoot),
      };
      this.streams.set(key, s);
    }
    const text = s.decoder.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    return Buffer.from(s.rewriter.write(text));
  }

  /** What is held back for the task's streams, once it ended. */
  flush(task: string): Array<{ stream: 'stdout' | 'stderr'; data: Uint8Array }> {
    const out: Array<{ stream: 'stdout' | 'stderr'; data: Uint8Array }> = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      const key = `${task}\0${stream}`;
      const s = this.streams.get(key);
      if (!s) continue;
      this.streams.delete(key);
      const rest = s.rewriter.write(s.decoder.end()) + s.rewriter.flush();
      if (rest) out.push({ stream, data: Buffer.from(rest) });
    }
    return out;
  }
}
