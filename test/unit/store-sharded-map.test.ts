import { describe, expect, it } from 'vitest';
import { ShardedMap } from '../../gateway/src/store/sharded-map.ts';

describe('ShardedMap (cached partition counts)', () => {
  it('answers like a Map through sets, overwrites, deletes and clear', () => {
    const map = new ShardedMap<number>();
    const reference = new Map<string, number>();
    // A deterministic walk over partition-like keys: sets, overwrites and deletes mixed.
    let seed = 7;
    const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < 50_000; i++) {
      const key = `order:A${next() % 5_000}`;
      const op = next() % 3;
      if (op === 2) expect(map.delete(key)).toBe(reference.delete(key));
      else {
        map.set(key, i);
        reference.set(key, i);
      }
      if (i % 997 === 0) expect(map.size).toBe(reference.size);
    }
    expect(map.size).toBe(reference.size);
    for (let k = 0; k < 5_000; k++) {
      const key = `order:A${k}`;
      expect(map.has(key)).toBe(reference.has(key));
      expect(map.get(key)).toBe(reference.get(key));
    }
    expect(map.delete('order:absent')).toBe(false);
    map.clear();
    expect(map.size).toBe(0);
    expect(map.has('order:A1')).toBe(false);
  });

  it('spreads a backlog of partitions over its shards, so no doubling moves more than a small share', () => {
    const map = new ShardedMap<number>();
    for (let i = 0; i < 200_000; i++) map.set(`order:APauxatq-${i}-0`, 1);
    expect(map.size).toBe(200_000);
    // 64 shards: about 3,125 each; a JavaScript Map would move all 200,000 at its last doubling.
    expect(map.largestShard).toBeLessThan((200_000 / 64) * 1.25);
  });
});
