// The agent's footprint on a device, as figures: file sizes, start-up time to
// its "listening" line (median of N starts) and resident memory after idling.
//   node bench/agentFootprint.mjs [NODE] [AGENT_FILE] [STARTS] [IDLE_MS]
// Prints one JSON line. Run `npm run build` first. No assertions: figures only.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout } from 'node:timers';
import { join } from 'node:path';

const [node = process.execPath, file = 'dist/octask-agent.js', starts = '5', idleMs = '10000'] =
  process.argv.slice(2);

function start(idle) {
  return new Promise((resolve, reject) => {
    const dir = mkdtempSync(join(tmpdir(), 'octask-footprint-'));
    // prettier-ignore
    const args = [file, '--no-mdns', '--bind', '127.0.0.1', '--port', '0',
      '--key-file', join(dir, 'key'), '--workdir', join(dir, 'work')];
    const t0 = process.hrtime.bigint();
    const child = spawn(node, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let seen = '';
    let listening = false;
    const finish = (figures) => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      resolve(figures);
    };
    child.once('error', reject);
    child.once('exit', (code) => {
      if (!listening) reject(new Error(`the agent exited with ${code} before listening:\n${seen}`));
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      seen += chunk;
      if (listening || !seen.includes('"msg":"listening"')) return;
      listening = true;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (!idle) return finish({ ms });
      setTimeout(() => {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        finish({ ms, rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024 });
      }, idle);
    });
  });
}

const times = [];
for (let i = 0; i < Number(starts); i++) times.push((await start(0)).ms);
times.sort((a, b) => a - b);
const { rssMiB } = await start(Number(idleMs));
const size = (p) => {
  try {
    return statSync(p).size;
  } catch {
    return null;
  }
};
console.log(
  JSON.stringify({
    node: execFileSync(node, ['--version'], { encoding: 'utf8' }).trim(),
    file,
    bytes: size(file),
    mapBytes: size(`${file}.map`),
    startMsMedian: Math.round(times[Math.floor(times.length / 2)]),
    startMs: times.map(Math.round),
    idleRssMiB: Math.round(rssMiB * 10) / 10,
    idleMs: Number(idleMs),
    loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  }),
);
