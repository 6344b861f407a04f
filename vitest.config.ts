import { defineConfig } from "vitest/config";

// Three projects: unit tests (no services), integration tests against real
// Postgres/Redis/S3/shared memory, and end-to-end tests that start real processes.
// `npm test` runs all three; CI starts the services first (infra/dev/services.sh).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: [
            "libs/**/*.test.ts",
            "apps/**/*.test.ts",
            "native/**/*.test.ts",
            "tests/unit/**/*.test.ts",
            "tests/infra/**/*.test.ts",
          ],
          exclude: ["**/node_modules/**", "**/*.int.test.ts", "**/*.e2e.test.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["**/*.int.test.ts"],
          exclude: ["**/node_modules/**"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["tests/**/*.e2e.test.ts"],
          exclude: ["**/node_modules/**"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
