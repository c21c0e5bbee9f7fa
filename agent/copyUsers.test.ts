import assert from 'node:assert/strict';
import { CopyUsers } from './copyUsers';

describe('copy users', () => {
  it('holds a layout until the tasks of that workspace are done, not of others', async () => {
    const users = new CopyUsers();
    const leave = await users.enter('a');
    const other = await users.enter('b');
    const order: string[] = [];
    const layout = users.layOut('a', async () => {
      order.push('layout');
      return 7;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(order.length, 0, 'waits for the task in a');
    order.push('task ended');
    leave();
    leave(); // twice is harmless
    const { result } = await layout;
    assert.equal(result, 7);
    assert.deepEqual(order, ['task ended', 'layout']);
    other();
  });

  it('makes a task wait for a layout in progress', async () => {
    const users = new CopyUsers();
    let finish!: () => void;
    const order: string[] = [];
    const layout = users.layOut('a', () => new Promise<void>((r) => (finish = r)));
    await new Promise((r) => setImmediate(r));
    const entering = users.enter('a').then((leave) => {
      order.push('task');
      leave();
    });
    await new Promise((r) => setImmediate(r));
    order.push('layout done');
    finish();
    await Promise.all([layout, entering]);
    assert.deepEqual(order, ['layout done', 'task']);
  });
});
