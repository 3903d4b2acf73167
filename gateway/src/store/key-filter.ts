/**
 * An in-memory membership filter over the keys the store looks up by point reads on every commit
 * (dedup keys `d`, idempotency keys `k`, partition counts `n`; and the correlation ids that have
 * events and the local documents' keys, README "Look-ups"): keys that are almost always absent. Once the filter has seen every existing key, a key it does not hold is absent without a
 * LevelDB read; a key it may hold is read for real. See "Look-ups" in README.md.
 *
 * - It holds a 32-bit hash of each prefixed key in an open-addressing table (linear probing) that
 *   doubles when its load passes 0.6: 6.7 to 13.3 bytes per key (8.4 MB for a million keys).
 * - A large table grows in steps: the new table takes every add at once, and the old one's hashes
 *   move over a chunk per turn of the event loop, while look-ups consult both. Moving a million
 *   keys at once held the event loop ~23 ms (every commit waited behind it); a step, well under 1 ms.
 * - It never answers "absent" for a key that was added: the hash is a pure function of the key,
 *   growth re-inserts every stored hash (the old table is read until every hash has moved), and
 *   nothing is ever removed.
 * - Deleted keys stay in it (a pruned dedup key, a partition count that went to zero): a stale
 *   entry only costs one real read, so deletions are not tracked.
 * - A different key with the same 32-bit hash is a false positive, also answered by a real read:
 *   with n keys the rate is about n / 2^32 (2.3e-4 for a million keys).
 * - Until `fill()` has seen every key of its sources (`ready`), `mayContain` answers true for
 *   everything: the store reads as it would without the filter. Whoever writes a key must `add`
 *   it no later than queuing the write, so that no key escapes both the scan and the adds.
 */

/** One sublevel to scan: its key prefix in the root database and an iterator over its keys. */
export interface KeySource {
  prefix: string;
  /** Keys without the prefix, in chunks; the scan closes the iterator. */
  keys(): KeyIterator;
}

export interface KeyIterator {
  nextv(size: number): Promise<string[]>;
  close(): Promise<void>;
}

const MIN_CAPACITY = 1 << 12;
/** Above this load the table doubles (linear probing stays short: ~3.6 probes for a miss at 0.6). */
const MAX_LOAD = 0.6;
/** Keys per iterator read while filling; each read is a thread-pool round trip (the loop runs between). */
const SCAN_CHUNK = 1_000;
/** Tables of at least this many slots grow in steps (a smaller one moves in well under 1 ms). */
const STEP_FROM = 1 << 16;
/** Old slots moved per step (one turn of the event loop): well under 1 ms. */
const STEP_SLOTS = 1 << 14;

/** Whether `h` is in an open-addressing table. */
function probe(table: Uint32Array, mask: number, h: number): boolean {
  for (let i = h & mask; ; i = (i + 1) & mask) {
    const v = table[i] as number;
    if (v === h) return true;
    if (v === 0) return false;
  }
}

/** Put `h` into a table that does not hold it and has room. */
function place(table: Uint32Array, mask: number, h: number): void {
  let i = h & mask;
  while (table[i] !== 0) i = (i + 1) & mask;
  table[i] = h;
}

/**
 * MurmurHash3 (x86, 32 bits) over the UTF-16 code units, two to a 32-bit block: about 0.1 µs for
 * a 60-character key on a small machine, and as good as random on keys that differ in one
 * character (FNV-1a, a byte at a time, was twice as slow and gave twice the false positives on
 * sequential control ids). Never 0 (0 marks an empty slot).
 */
export function hashKey(key: string): number {
  const n = key.length;
  let h = 0x9747b28c;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    let k = key.charCodeAt(i) | (key.charCodeAt(i + 1) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < n) {
    let k = Math.imul(key.charCodeAt(i), 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0 || 1;
}

export class KeyFilter {
  #table = new Uint32Array(MIN_CAPACITY);
  #mask = MIN_CAPACITY - 1;
  #size = 0;
  #limit = Math.floor(MIN_CAPACITY * MAX_LOAD);
  /** The table being moved into #table while growing in steps, and how many of its slots have moved. */
  #old: Uint32Array | undefined;
  #oldMask = 0;
  #moved = 0;
  #ready = false;
  #stopped = false;
  #scan: Promise<void> | undefined;

  /** True once every key of the sources was seen: from then on `mayContain` can answer false. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Distinct hashes held. */
  get size(): number {
    return this.#size;
  }

  /** Memory held by the table (and, while growing, by the one it replaces). */
  get bytes(): number {
    return this.#table.byteLength + (this.#old?.byteLength ?? 0);
  }

  /** A growth is still moving hashes from the old table (look-ups read both meanwhile). */
  get growing(): boolean {
    return this.#old !== undefined;
  }

  add(key: string): void {
    this.#insert(hashKey(key));
  }

  /** False only when the key is certainly absent (never before `ready`). */
  mayContain(key: string): boolean {
    if (!this.#ready) return true;
    return this.has(key);
  }

  /** Whether the key's hash is held, whether or not the filter is complete (for tests). */
  has(key: string): boolean {
    const h = hashKey(key);
    if (probe(this.#table, this.#mask, h)) return true;
    return this.#old !== undefined && probe(this.#old, this.#oldMask, h);
  }

  #insert(h: number): void {
    const table = this.#table;
    const mask = this.#mask;
    // A hash still waiting in the old table is held already; its move brings it over.
    if (this.#old && probe(this.#old, this.#oldMask, h)) return;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = table[i] as number;
      if (v === h) return;
      if (v === 0) {
        table[i] = h;
        if (++this.#size > this.#limit) this.#grow();
        return;
      }
    }
  }

  #grow(): void {
    // Never two growths at once (a step per turn moves a table long before its successor fills).
    if (this.#old) this.#move(Infinity);
    const old = this.#table;
    const capacity = old.length * 2;
    this.#old = old;
    this.#oldMask = this.#mask;
    this.#moved = 0;
    this.#table = new Uint32Array(capacity);
    this.#mask = capacity - 1;
    this.#limit = Math.floor(capacity * MAX_LOAD);
    if (old.length < STEP_FROM) this.#move(Infinity);
    else this.#step();
  }

  #step(): void {
    setImmediate(() => {
      if (!this.#old) return;
      this.#move(STEP_SLOTS);
      if (this.#old) this.#step();
    });
  }

  /** Move up to `slots` old slots into the table; drops the old table once all have moved. */
  #move(slots: number): void {
    const old = this.#old;
    if (!old) return;
    const table = this.#table;
    const mask = this.#mask;
    const end = Math.min(old.length, this.#moved + slots);
    for (let j = this.#moved; j < end; j++) {
      const h = old[j] as number;
      // Adds during the growth never put a hash the old table holds into the new one: no check needed.
      if (h !== 0) place(table, mask, h);
    }
    this.#moved = end;
    if (end === old.length) this.#old = undefined;
  }

  /**
   * Add every key of the sources, in chunks, then mark the filter ready. Not awaited by the store's
   * open (start-up must not grow with the backlog). Never rejects: a failure or `stop()` leaves the
   * filter incomplete, and an incomplete filter only means real reads.
   */
  fill(sources: KeySource[]): Promise<void> {
    this.#scan ??= this.#fill(sources).catch(() => undefined);
    return this.#scan;
  }

  async #fill(sources: KeySource[]): Promise<void> {
    for (const source of sources) {
      if (this.#stopped) return;
      const iterator = source.keys();
      try {
        for (;;) {
          const keys = await iterator.nextv(SCAN_CHUNK);
          if (this.#stopped || keys.length === 0) break;
          for (const key of keys) this.add(source.prefix + key);
        }
      } finally {
        await iterator.close().catch(() => undefined);
      }
    }
    if (!this.#stopped) this.#ready = true;
  }

  /** Stop a running fill (the store is closing); resolves once its iterator is closed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#scan;
  }
}
