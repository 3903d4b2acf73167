import { describe, expect, it } from 'vitest';
import { WriteArena, type ArenaSlice } from '../../gateway/src/store/write-arena.ts';

/** The byte range a slice occupies in the arena's buffer, or undefined for a buffer of its own. */
function rangeIn(arenaBuffer: ArrayBufferLike, slice: ArenaSlice): [number, number] | undefined {
  return slice.bytes.buffer === arenaBuffer ? [slice.bytes.byteOffset, slice.bytes.byteOffset + slice.bytes.length] : undefined;
}

describe('the message log write arena', () => {
  it('hands out slices of one buffer, reuses their space once released, and never waits', () => {
    const arena = new WriteArena(1024);
    const a = arena.take(200);
    const b = arena.take(200);
    const shared = a.bytes.buffer;
    expect(b.bytes.buffer).toBe(shared);
    expect(rangeIn(shared, a)).not.toEqual(rangeIn(shared, b));
    // Larger than a quarter of the arena: a buffer of its own.
    const big = arena.take(300);
    expect(big.bytes.buffer).not.toBe(shared);
    expect(big.bytes.length).toBe(300);
    const c = arena.take(200);
    const d = arena.take(200);
    expect(arena.inUse).toBe(4);
    // 800 of 1024 bytes held from the start: 250 more do not fit, a buffer of its own.
    const e = arena.take(250);
    expect(e.bytes.buffer).not.toBe(shared);
    // Released out of order: b's space stays held until a, before it, is released too.
    b.release();
    expect(arena.inUse).toBe(4);
    expect(arena.take(230).bytes.buffer).not.toBe(shared);
    a.release();
    expect(arena.inUse).toBe(2);
    // After the last slice while it fits, then from the start, where a and b were.
    const f = arena.take(210);
    expect(rangeIn(shared, f)).toEqual([800, 1010]);
    const g = arena.take(210);
    expect(rangeIn(shared, g)).toEqual([0, 210]);
    // Wrapped: only the space between the newest slice and the oldest held one is free.
    expect(arena.take(200).bytes.buffer).not.toBe(shared);
    expect(rangeIn(shared, arena.take(190))).toEqual([210, 400]);
    for (const s of [c, d, f, g]) s.release();
    expect(arena.inUse).toBe(1);
  });

  it('never gives out space a held slice still has, under a random walk of takes and releases', () => {
    const arena = new WriteArena(64 * 1024);
    const held: ArenaSlice[] = [];
    let shared: ArrayBufferLike | undefined;
    let seed = 42;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let fromArena = 0;
    for (let step = 0; step < 20_000; step++) {
      if (held.length > 0 && random() < 0.5) {
        const [slice] = held.splice(Math.floor(random() * held.length), 1);
        slice!.release();
        continue;
      }
      const slice = arena.take(1 + Math.floor(random() * 6000));
      shared ??= slice.bytes.length <= 16 * 1024 ? slice.bytes.buffer : undefined;
      const mine = shared && rangeIn(shared, slice);
      if (mine) {
        fromArena++;
        slice.bytes.fill(step % 251);
        for (const other of held) {
          const theirs = rangeIn(shared!, other);
          if (theirs) expect(mine[1] <= theirs[0] || theirs[1] <= mine[0], `step ${step}`).toBe(true);
        }
      }
      held.push(slice);
    }
    // Releases in random order hold space longer than a log's writes (which end nearly in order),
    // yet a good part of the slices come from the arena; none overlapped a held one.
    expect(fromArena).toBeGreaterThan(4_000);
    for (const slice of held) slice.release();
    expect(arena.inUse).toBe(0);
  });
});
