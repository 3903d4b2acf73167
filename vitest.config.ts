import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real sockets, ptys and child processes: keep parallelism modest on a 2-core machine.
    maxWorkers: 2,
    reporters: ['default'],
    // The gateways and CLIs the tests start run with TZ set (UTC unless the shell sets one): on a
    // box at UTC without TZ, `check` warns that nothing says the lab's zone (config/time-zone.ts),
    // which only the tests of that warning want to see (they unset TZ themselves).
    env: { TZ: process.env.TZ || 'UTC' },
  },
});
