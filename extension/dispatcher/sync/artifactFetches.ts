import type { Logger } from '../../../shared/logger';
import type {
  AgentBound,
  BlobMessage,
  ExitMessage,
  FetchDoneMessage,
} from '../../../shared/protocol';
import type { ArtifactStats } from './artifactReceiver';
import { ArtifactReceiver } from './artifactReceiver';

interface Fetch {
  link: string;
  exit: ExitMessage;
  receiver: ArtifactReceiver;
  done: (stats: ArtifactStats) => void;
}

/**
 * Finished tasks whose artifacts are on their way back: the task is settled
 * only once its files are in the local workspace (or given up on).
 */
export class ArtifactFetches {
  private readonly fetches = new Map<string, Fetch>();

  constructor(private readonly logger: Logger) {}

  /** Asks the agent for the artifacts of `exit` that differ locally; `done` runs once they are in. */
  start(
    link: string,
    send: (message: AgentBound) => boolean,
    root: string,
    exit: ExitMessage,
    done: (stats: ArtifactStats) => void,
  ): void {
    let receiver: ArtifactReceiver;
    try {
      receiver = new ArtifactReceiver(root, exit.artifacts ?? [], this.logger);
    } catch (err) {
      // The local workspace is gone (moved, deleted): nothing can be brought back.
      const reason = `not brought back: ${(err as Error).message}`;
      done({
        files: 0,
        bytes: 0,
        skipped: (exit.artifacts ?? []).map((e) => ({ path: e.path, reason })),
      });
      return;
    }
    this.fetches.set(exit.task, { link, exit, receiver, done });
    receiver.plan().then(
      (hashes) => send({ t: 'fetch', task: exit.task, hashes }),
      (err: Error) => {
        this.logger.warn(`artifacts of ${exit.task} not brought back: ${err.message}`);
        send({ t: 'fetch', task: exit.task, hashes: [] });
      },
    );
  }

  blob(message: BlobMessage): void {
    this.fetches.get(message.sync)?.receiver.blob(message);
  }

  finished(message: FetchDoneMessage): void {
    const f = this.fetches.get(message.task);
    if (!f) return;
    void f.receiver.finish(message.missing).then((stats) => {
      if (this.fetches.get(message.task) !== f) return;
      this.fetches.delete(message.task);
      f.done(stats);
    });
  }

  /** The agent went away: its fetches end with what arrived; the tasks are settled by the caller. */
  linkDown(link: string): void {
    for (const [task, f] of this.fetches) {
      if (f.link !== link) continue;
      this.fetches.delete(task);
      void f.receiver.finish([]);
    }
  }
}
