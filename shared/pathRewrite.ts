/**
 * Maps the agent's absolute workspace paths in streamed output back to the
 * local workspace, so problem matchers link to local files. Output arrives in
 * chunks that may split a path, so the rewriter holds back a chunk's tail
 * while it could still be the start of the agent's root.
 */
export class PathRewriter {
  private held = '';

  constructor(
    private readonly agentRoot: string,
    private readonly localRoot: string,
  ) {}

  write(chunk: string): string {
    const text = this.held + chunk;
    const keep = this.partialRootAtEnd(text);
    this.held = text.slice(text.length - keep);
    return this.replaceAll(text.slice(0, text.length - keep));
  }

  /** What is still held back, once the stream ended. */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return this.replaceAll(rest);
  }

  private replaceAll(text: string): string {
    if (!this.agentRoot) return text;
    let out = '';
    let from = 0;
    for (;;) {
      const at = text.indexOf(this.agentRoot, from);
      if (at === -1) break;
      const after = text[at + this.agentRoot.length];
      // `/ws/abc` must not match inside `/ws/abcd`: only a whole path component counts.
      const whole = after === undefined || !/[\w.-]/.test(after);
      out += text.slice(from, at) + (whole ? this.localRoot : this.agentRoot);
      from = at + this.agentRoot.length;
    }
    return out + text.slice(from);
  }

  /** Length of the longest suffix of `text` that could begin the agent's root (or is all of it). */
  private partialRootAtEnd(text: string): number {
    const max = Math.min(text.length, this.agentRoot.length);
    // A root that ends the text exactly might still continue (`/ws/abc` → `/ws/abcd`).
    for (let n = max; n > 0; n--) {
      if (this.agentRoot.startsWith(text.slice(text.length - n))) return n;
    }
    return 0;
  }
}
