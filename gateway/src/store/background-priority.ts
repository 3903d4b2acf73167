/**
 * LevelDB's background thread yields the CPU to intake.
 *
 * LevelDB writes its memtables to level-0 files and compacts the levels on one background thread,
 * shared by every database of the process. A compaction at a sustained 7,500 messages/s takes one
 * core for 2–3 s every ~16 s; on a 2-core box the main thread then waits for the CPU, intake falls
 * behind and ACK latencies climb to hundreds of milliseconds (measured: see README.md, "Measured").
 * At the lowest priority (nice 19, as RocksDB's `LowerThreadPoolCPUPriority` does for its
 * compaction pool) the thread runs on the CPU time intake leaves, and intake keeps the cores when
 * it needs them. LevelDB regulates the rest itself: level-0 files that pile up slow its writes
 * down, which leaves the thread more time.
 *
 * LevelDB starts that thread at its first flush or compaction, from the thread that asked for it
 * (one of libuv's workers, whose name it inherits), and never names it. So the thread is found by
 * watching the process's threads: one named like libuv's workers that was not there before the
 * first store opened (libuv starts all its workers at once, before that snapshot) is LevelDB's.
 * Linux only (`/proc/self/task`; lowering a thread's priority needs no privilege); elsewhere
 * nothing is done.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';

const TASKS = '/proc/self/task';
/** The name a thread started from libuv's thread pool inherits (Node 22 and later name them). */
const POOL_THREAD_NAME = 'libuv-worker';
/** Linux's lowest scheduling priority for a normal thread. */
export const BACKGROUND_NICE = 19;
const WATCH_EVERY_MS = 500;

/** The ids of this process's threads, or undefined where `/proc` is not available. */
export function threadIds(): Set<number> | undefined {
  try {
    return new Set(readdirSync(TASKS).map(Number));
  } catch {
    return undefined;
  }
}

/** A thread's name and nice value (Linux), or undefined when it is gone. */
export function threadInfo(tid: number): { name: string; nice: number } | undefined {
  try {
    const name = readFileSync(`${TASKS}/${tid}/comm`, 'utf8').trim();
    const stat = readFileSync(`${TASKS}/${tid}/stat`, 'utf8');
    // Fields after the name (which may hold spaces) start at its closing parenthesis; nice is
    // field 19 of stat, the 17th after the name.
    const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    return { name, nice };
  } catch {
    return undefined;
  }
}

interface WatchState {
  known: Set<number>;
  timer: NodeJS.Timeout | undefined;
  lowered: number | undefined;
}

let watch: WatchState | undefined;

/**
 * Call before opening a LevelDB database, once libuv's thread pool is running (after any awaited
 * `fs/promises` call). The first call takes the snapshot and starts watching; the thread found
 * is lowered once for the whole process. Returns the snapshot's state for tests.
 */
export function lowerLevelDbBackgroundThread(): { watching: boolean; lowered: number | undefined } {
  if (!watch) {
    const known = threadIds();
    if (!known) return { watching: false, lowered: undefined };
    const state: WatchState = { known, timer: undefined, lowered: undefined };
    watch = state;
    state.timer = setInterval(() => lookOnce(state), WATCH_EVERY_MS);
    state.timer.unref();
  }
  return { watching: watch.timer !== undefined, lowered: watch.lowered };
}

/** Look for the thread now (the watch also looks every half second); returns its id once found. */
export function lookForLevelDbBackgroundThread(): number | undefined {
  if (watch) lookOnce(watch);
  return watch?.lowered;
}

function lookOnce(state: WatchState): void {
  if (state.lowered !== undefined) return;
  const now = threadIds();
  if (!now) return;
  for (const tid of now) {
    if (state.known.has(tid)) continue;
    state.known.add(tid);
    if (threadInfo(tid)?.name !== POOL_THREAD_NAME) continue;
    try {
      setPriority(tid, BACKGROUND_NICE);
    } catch {
      continue; // gone meanwhile, or not allowed: LevelDB works as before
    }
    state.lowered = tid;
    if (state.timer) clearInterval(state.timer);
    state.timer = undefined;
    return;
  }
}
