import { defineConfig } from 'vitest/config';

// Two projects share the workers:
//   main   every test, on the machine's PostgreSQL (Debian 12: 15) or SHADOWSHIFT_TEST_PG_MAJOR
//   pg18   the PostgreSQL tests again on a second major (test/postgres and the postgres
//          cases of the acceptance tests), from the npm alias pg18 (README, "Test it")
// SHADOWSHIFT_TEST_PG_EXTRA picks the second major (default 18; `none` leaves it out).
// It is left out when SHADOWSHIFT_TEST_PG_MAJOR or SHADOWSHIFT_TEST_PG_URL pins the server.
// Only the main project: `npx vitest run --project main <files>`.
const extraSetting = process.env.SHADOWSHIFT_TEST_PG_EXTRA?.trim() || '18';
const extra = extraSetting === 'none' || process.env.SHADOWSHIFT_TEST_PG_MAJOR || process.env.SHADOWSHIFT_TEST_PG_URL ? null : extraSetting;

const shared = {
  globalSetup: ['test/support/global-setup.ts'],
  setupFiles: ['test/support/per-file.ts'],
  testTimeout: 120_000,
  hookTimeout: 120_000,
};

export default defineConfig({
  test: {
    // Tests share two servers and run real workloads; two cores do not gain from more.
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
    projects: [
      { test: { ...shared, name: 'main', include: ['test/**/*.test.ts'] } },
      ...(extra
        ? [
            {
              test: {
                ...shared,
                name: `pg${extra}`,
                include: [
                  'test/postgres/**/*.test.ts',
                  // Their cases run per dialect; SHADOWSHIFT_TEST_DIALECTS keeps the postgres ones.
                  'test/acceptance/{abort-left-behind,adversarial,bad-input,checksum,connection-drops,cutover-blockers,kill-resume,leftover-refusal,signal-at-cutover,under-load}.test.ts',
                ],
                env: { SHADOWSHIFT_TEST_PG_MAJOR: extra, SHADOWSHIFT_TEST_DIALECTS: 'postgres' },
              },
            },
          ]
        : []),
    ],
  },
});
