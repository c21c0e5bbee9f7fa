import assert from 'node:assert/strict';
import { parseArgs as nodeParseArgs } from 'node:util';
import { FlagError, parseArgs } from './flags';

const options = {
  name: { type: 'string' },
  allow: { type: 'string', multiple: true },
  pretty: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

describe('agent flag parser', () => {
  it('reads values, repeated flags, short flags and positionals', () => {
    const { values, positionals } = parseArgs({
      args: ['--name', 'pi', '--allow=^make', '--allow', '^npm', '-h', 'extra', '--pretty'],
      options,
    });
    assert.deepEqual(values, { name: 'pi', allow: ['^make', '^npm'], help: true, pretty: true });
    assert.deepEqual(positionals, ['extra']);
  });

  it('keeps the last of a repeated single flag, and stops at --', () => {
    const { values, positionals } = parseArgs({
      args: ['--name', 'a', '--name=b', '--', '--pretty', 'x'],
      options,
    });
    assert.equal(values.name, 'b');
    assert.equal(values.pretty, undefined);
    assert.deepEqual(positionals, ['--pretty', 'x']);
  });

  it('rejects unknown flags, missing values and values given to booleans', () => {
    const bad = (args: string[], re: RegExp): void =>
      assert.throws(
        () => parseArgs({ args, options }),
        (err: unknown) => err instanceof FlagError && re.test(err.message),
      );
    bad(['--bogus'], /Unknown option '--bogus'/);
    bad(['--constructor', 'x'], /Unknown option '--constructor'/);
    bad(['-x'], /Unknown option '-x'/);
    bad(['-hx'], /Unknown option '-hx'/);
    bad(['--name'], /'--name' needs a value/);
    bad(['--name', '--pretty'], /'--name' needs a value/);
    bad(['--pretty=yes'], /does not take a value/);
    assert.equal(parseArgs({ args: ['--name=-odd'], options }).values.name, '-odd');
  });

  it('agrees with util.parseArgs where that exists', () => {
    const lines = [
      ['--name', 'pi', '--allow', 'a', '--allow=b', '-h'],
      ['--pretty', '--', '--name'],
      ['--name=x=y', 'pos'],
    ];
    for (const args of lines) {
      const ours = parseArgs({ args, options });
      const theirs = nodeParseArgs({ args, options, allowPositionals: true, strict: true });
      assert.deepEqual(
        { values: { ...ours.values }, positionals: ours.positionals },
        { values: { ...theirs.values }, positionals: theirs.positionals },
        args.join(' '),
      );
    }
  });
});
