import assert from 'node:assert/strict';
import { generateKey, pasteLine } from '../../shared/clusterKey';
import { keyFromPastedText } from './keyInput';

describe('keyFromPastedText', () => {
  const key = generateKey();
  const hex = key.secret.toString('hex');

  it('takes the bare key, with white space around it, in either case', () => {
    assert.equal(keyFromPastedText(hex).hex, hex);
    assert.equal(keyFromPastedText(`  ${hex.toUpperCase()}\n`).hex, hex);
  });

  it('takes the line an agent prints on its first start', () => {
    assert.equal(keyFromPastedText(pasteLine(key)).hex, hex);
    assert.equal(keyFromPastedText(`  ${pasteLine(key)}  `).hex, hex);
  });

  it("takes all of `octask key`'s output, key id included", () => {
    const printed = `Cluster key in /root/.config/octask/key\nkey id: ${key.id}\n\nTo put another machine in this cluster, run there:\n\n  ${pasteLine(key)}\n`;
    assert.equal(keyFromPastedText(printed).hex, hex);
  });

  it('refuses text with no key, a short one, a longer run, or two keys, saying why', () => {
    assert.match(keyFromPastedText('').error ?? '', /Paste the key/);
    assert.match(keyFromPastedText(key.id).error ?? '', /No key in that/);
    assert.match(keyFromPastedText(hex.slice(1)).error ?? '', /No key in that/);
    assert.match(keyFromPastedText(`${hex}0`).error ?? '', /No key in that/);
    const other = generateKey().secret.toString('hex');
    assert.match(keyFromPastedText(`${hex} ${other}`).error ?? '', /more than one key/);
    assert.equal(keyFromPastedText(`${hex} ${hex}`).hex, hex, 'the same key twice is one key');
  });
});
