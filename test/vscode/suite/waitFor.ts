import type { ClusterModel } from '../../../extension/client/clusterModel';

/**
 * Resolves with the first truthy value of `probe`, checked now and after each
 * change the model reports: waits on events, never on a fixed sleep.
 */
export function waitForModel<T>(
  model: ClusterModel,
  probe: () => T | undefined | false | null,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const first = probe();
    if (first) return resolve(first);
    const subs: Array<{ dispose(): void }> = [];
    const done = (): void => {
      clearTimeout(timer);
      for (const s of subs) s.dispose();
    };
    const check = (): void => {
      let value: T | undefined | false | null;
      try {
        value = probe();
      } catch (err) {
        done();
        return reject(err as Error);
      }
      if (value) {
        done();
        resolve(value);
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    subs.push(
      model.onAgents.on(check),
      model.onTask.on(check),
      model.onOutput.on(check),
      model.onLog.on(check),
    );
  });
}

/** For state nothing announces to the test (diagnostics, processes, the page): checks every 100 ms. */
export async function poll<T>(
  probe: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
