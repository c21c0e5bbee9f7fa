/**
 * Runs the bench's Node floor (floorPair.ts, built as dist/bench-floor.js):
 * one first sync of a workspace by a fresh receiver and sender, timed as the
 * CLI is (the sender's process, Node's start-up included), with the CPU of
 * both ends.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cpuDuring } from './cpuTime';

/** The built floor program: beside the bench's own bundle. */
const FLOOR_BIN = join(__dirname, 'bench-floor.js');

export interface FloorSync {
  wallMs: number;
  /** CPU milliseconds of the sender (with its git) and the receiver; undefined without /proc. */
  senderCpu?: number;
  receiverCpu?: number;
}

function exited(proc: ChildProcess, what: string, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    proc.once('error', reject);
    proc.once('close', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${what} ended with ${signal ?? code}: ${stderr().trim()}`)),
    );
  });
}

function listening(proc: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^listening (\d+)\n/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('close', (code) =>
      reject(new Error(`the floor's receiver ended (${code}) before it listened`)),
    );
  });
}

/** One first sync of `root` into `dest` (which must not exist yet) with the floor pair. */
export async function floorSync(root: string, dest: string, keyFile: string): Promise<FloorSync> {
  if (!existsSync(FLOOR_BIN)) throw new Error(`${FLOOR_BIN} is missing: run npm run build`);
  let receiverErr = '';
  const receiver = spawn(process.execPath, [FLOOR_BIN, 'receive', dest, keyFile], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  receiver.stderr.setEncoding('utf8').on('data', (d: string) => (receiverErr += d));
  const receiverDone = exited(receiver, "the floor's receiver", () => receiverErr);
  // Awaited once the sync is done; until then a failure shows as the sender's or listening's.
  receiverDone.catch(() => undefined);
  try {
    const port = await listening(receiver);
    const timed = await cpuDuring(
      [{ pid: 'self', childrenOnly: true }, ...(receiver.pid ? [{ pid: receiver.pid }] : [])],
      async () => {
        let senderErr = '';
        const started = performance.now();
        const sender = spawn(process.execPath, [FLOOR_BIN, 'send', root, String(port), keyFile], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        sender.stderr.setEncoding('utf8').on('data', (d: string) => (senderErr += d));
        await exited(sender, "the floor's sender", () => senderErr);
        return performance.now() - started;
      },
    );
    receiver.stdin.end();
    await receiverDone;
    return { wallMs: timed.result, senderCpu: timed.cpu[0], receiverCpu: timed.cpu[1] };
  } finally {
    receiver.kill();
  }
}
