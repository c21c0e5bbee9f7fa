/** A minimal event source with VS Code's `Disposable` shape, usable without `vscode` (unit tests). */
export class Listeners<T> {
  private readonly fns = new Set<(value: T) => void>();

  on(fn: (value: T) => void): { dispose(): void } {
    this.fns.add(fn);
    return { dispose: () => this.fns.delete(fn) };
  }

  fire(value: T): void {
    for (const fn of [...this.fns]) fn(value);
  }
}
