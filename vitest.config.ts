import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // plugins import the public surface as "autossl" (the package's own exports); under test that is the source
    alias: [{ find: /^autossl$/, replacement: path.resolve(import.meta.dirname, 'src/index.ts') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // one temporary directory per run (TMPDIR), removed at the end
    globalSetup: ['test/global-tmp.ts'],
    // The end-to-end suites share one loopback ACME sandbox (fixed ports 80/443/14000...): run files one by one.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
