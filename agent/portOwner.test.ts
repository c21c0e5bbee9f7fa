import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { findPortOwner, listeningInodes, portTakenMessage } from './portOwner';

// Two listeners (7879 = 0x1EC7, 22 = 0x16) and one connection from 7879 that is not a listener.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1EC7 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1151 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1EC7 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 20 4 30 10 -1
`;

describe('port owner', () => {
  it('finds the listening socket of a port in /proc/net/tcp', () => {
    assert.deepEqual(listeningInodes(TCP, 7879), ['424242']);
    assert.deepEqual(listeningInodes(TCP, 22), ['1151']);
    assert.deepEqual(listeningInodes(TCP, 8080), []);
  });

  it('finds the process holding that socket through /proc/PID/fd', () => {
    const proc = mkdtempSync(join(tmpdir(), 'octask-proc-'));
    try {
      mkdirSync(join(proc, 'net'));
      writeFileSync(join(proc, 'net', 'tcp'), TCP);
      for (const [pid, inode, cmd] of [
        ['99', '1151', 'sshd\0'],
        ['1234', '424242', 'node\0/home/pi/octask-agent.js\0--name\0pi\0'],
      ] as const) {
        mkdirSync(join(proc, pid, 'fd'), { recursive: true });
        symlinkSync(`socket:[${inode}]`, join(proc, pid, 'fd', '3'));
        writeFileSync(join(proc, pid, 'cmdline'), cmd);
      }
      assert.deepEqual(findPortOwner(7879, proc), {
        pid: 1234,
        command: 'node /home/pi/octask-agent.js --name pi',
      });
      assert.equal(findPortOwner(8080, proc), undefined);
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });

  it('says who holds the port in one line, and what to do', () => {
    const agent = { pid: 1234, command: 'node /home/pi/octask-agent.js' };
    assert.equal(
      portTakenMessage(7879, agent),
      'port 7879 is taken, probably by another octask-agent (pid 1234): stop it or use --port',
    );
    assert.equal(
      portTakenMessage(7879, undefined),
      'port 7879 is taken, probably by another octask-agent: stop it or use --port',
    );
    assert.equal(
      portTakenMessage(7879, { pid: 7, command: '/usr/sbin/nginx -g daemon' }),
      'port 7879 is taken by nginx (pid 7): stop it or use --port',
    );
  });
});
