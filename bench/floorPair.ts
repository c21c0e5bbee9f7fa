/**
 * The bench's floor for a first sync in Node: the least any Node sender and
 * receiver must do to copy a git workspace over the same TLS as Octask
 * (pskServerOptions / pskClientOptions, so the same cipher), with each file's
 * SHA-256 made on one side and checked on the other as Octask's content
 * addressing needs. No manifest, no WebSocket, no store, no checkout rules:
 * what is left is the runtime, so the gap between this and rsync is the part
 * of Octask's gap that no change to Octask's own code can close.
 *
 *   node bench-floor.js receive DIR KEYFILE    prints "listening PORT", takes one
 *                                              connection, writes under DIR, answers
 *                                              "done N", then waits for its stdin to end
 *   node bench-floor.js send ROOT PORT KEYFILE sends ROOT's tracked files to 127.0.0.1:PORT
 *
 * The receiver outlives its connection so that the bench can read its CPU
 * from /proc before it is reaped.
 *
 * A frame is [u32 path length][u32 size][u32 mode][SHA-256, 64 hex digits][path][data]:
 * the digest made and compared as hex with shared/sha256's sha256Hex, as Octask's are.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { connect, createServer } from 'node:tls';
import { readKeyFile } from '../agent/keyFile';
import { pskClientOptions, pskServerOptions } from '../shared/tlsPsk';
import { sha256Hex } from '../shared/sha256';
import { checkRelativePath } from '../shared/workspacePath';

const DIGEST_BYTES = 64;
const HEADER_BYTES = 12 + DIGEST_BYTES;
/** What the sender hands TLS at a time; Octask's parts are of the same order. */
const WRITE_BYTES = 256 * 1024;

function readWhole(path: string): { data: Buffer; mode: number } {
  const fd = openSync(path, 'r');
  try {
    const { size, mode } = fstatSync(fd);
    const data = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, data, got, size - got, null);
      if (n === 0) break;
      got += n;
    }
    return { data: data.subarray(0, got), mode: mode & 0o777 };
  } finally {
    closeSync(fd);
  }
}

function frame(path: string, data: Buffer, mode: number): Buffer[] {
  const name = Buffer.from(path, 'utf8');
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32LE(name.length, 0);
  header.writeUInt32LE(data.length, 4);
  header.writeUInt32LE(mode, 8);
  header.write(sha256Hex(data), 12, DIGEST_BYTES, 'latin1');
  return [header, name, data];
}

async function send(root: string, port: number, keyFile: string): Promise<void> {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, maxBuffer: 1 << 28 })
    .toString('utf8')
    .split('\0')
    .filter((f) => f !== '');
  const socket = connect({ host: '127.0.0.1', port, ...pskClientOptions(readKeyFile(keyFile)) });
  let answer = '';
  socket.setEncoding('utf8').on('data', (d: string) => (answer += d));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const closed = new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => resolve());
  });
  let parts: Buffer[] = [];
  let bytes = 0;
  const write = async (): Promise<void> => {
    const ok = socket.write(Buffer.concat(parts, bytes));
    parts = [];
    bytes = 0;
    if (!ok) await new Promise<void>((resolve) => socket.once('drain', () => resolve()));
  };
  for (const path of files) {
    const { data, mode } = readWhole(join(root, path));
    for (const p of frame(path, data, mode)) {
      parts.push(p);
      bytes += p.length;
    }
    if (bytes >= WRITE_BYTES) await write();
  }
  if (bytes > 0) await write();
  socket.end();
  await closed;
  if (answer.trim() !== `done ${files.length}`)
    throw new Error(`the receiver answered ${JSON.stringify(answer)} for ${files.length} files`);
  process.stdout.write(answer);
}

/** Cuts the stream into frames and writes each file once, in place. */
class Writer {
  private pending: Buffer = Buffer.alloc(0);
  private readonly folders = new Set<string>();
  files = 0;

  constructor(private readonly dir: string) {}

  take(chunk: Buffer): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let at = 0;
    for (;;) {
      if (buf.length - at < HEADER_BYTES) break;
      const nameBytes = buf.readUInt32LE(at);
      const size = buf.readUInt32LE(at + 4);
      const end = at + HEADER_BYTES + nameBytes + size;
      if (buf.length < end) break;
      const mode = buf.readUInt32LE(at + 8);
      const digest = buf.toString('latin1', at + 12, at + HEADER_BYTES);
      const path = buf.toString('utf8', at + HEADER_BYTES, at + HEADER_BYTES + nameBytes);
      this.write(path, buf.subarray(end - size, end), mode, digest);
      at = end;
    }
    buf = buf.subarray(at);
    // Kept as a copy, so a small remainder does not hold a large chunk alive.
    this.pending = buf.length > 0 ? Buffer.from(buf) : Buffer.alloc(0);
  }

  private write(path: string, data: Buffer, mode: number, digest: string): void {
    const bad = checkRelativePath(path);
    if (bad) throw new Error(`refused path ${JSON.stringify(path)}: ${bad}`);
    if (sha256Hex(data) !== digest) throw new Error(`${path}: wrong digest`);
    const abs = join(this.dir, path);
    const folder = dirname(abs);
    if (!this.folders.has(folder)) {
      mkdirSync(folder, { recursive: true });
      this.folders.add(folder);
    }
    const fd = openSync(abs, 'wx', mode);
    try {
      writeSync(fd, data);
    } finally {
      closeSync(fd);
    }
    this.files++;
  }
}

function receive(dir: string, keyFile: string): void {
  const server = createServer(pskServerOptions(readKeyFile(keyFile)), (socket: TLSSocket) => {
    server.close();
    const writer = new Writer(dir);
    socket.on('data', (chunk: Buffer) => {
      try {
        writer.take(chunk);
      } catch (err) {
        socket.destroy();
        fail(err);
      }
    });
    socket.on('end', () => socket.end(`done ${writer.files}\n`));
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') return fail(new Error('no port'));
    process.stdout.write(`listening ${address.port}\n`);
  });
  process.stdin.resume().on('end', () => process.exit(0));
}

function fail(err: unknown): never {
  process.stderr.write(`bench-floor: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'receive' && args.length === 2) receive(args[0]!, args[1]!);
else if (mode === 'send' && args.length === 3)
  send(args[0]!, Number(args[1]), args[2]!).catch(fail);
else fail(new Error('usage: bench-floor.js receive DIR KEYFILE | send ROOT PORT KEYFILE'));
