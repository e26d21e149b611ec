import { defineConfig } from "vitest/config";

// Three projects, from fast to slow:
//  unit         pure logic, no processes; runs in seconds
//  integration  real Redis and HTTP receivers on 127.0.0.1 (*.int.test.ts)
//  e2e          one real kube-apiserver + etcd + Redis per run (*.e2e.test.ts)
// Integration and e2e tests run real processes on a shared 2-core machine: a test that fails
// once is run again, and the summary names every test that needed it (FLAKY), so a flake is
// seen and fixed without one unlucky schedule failing a whole CI run. A test that fails twice
// fails the run. Unit tests are never retried.
const RETRY_SLOW_TESTS = 1;

export default defineConfig({
  test: {
    // the fault suite's table before the summary line, which CI reads as the last one
    reporters: ["default", "./test/faults/fault-table-reporter.ts", "./test/env/summary-reporter.ts"],
    projects: [
      {
        test: {
          name: "unit",
          include: ["{contract,common,operator,dispatcher,console,test}/**/*.test.ts"],
          exclude: ["**/*.int.test.ts", "**/*.e2e.test.ts", "**/node_modules/**"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["{contract,common,operator,dispatcher,console,test}/**/*.int.test.ts"],
          globalSetup: ["test/env/redis-global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
          retry: RETRY_SLOW_TESTS,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["{contract,common,operator,dispatcher,console,test}/**/*.e2e.test.ts"],
          globalSetup: ["test/env/cluster-global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          retry: RETRY_SLOW_TESTS,
        },
      },
    ],
  },
});
