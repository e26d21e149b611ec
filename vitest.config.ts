import { defineConfig } from "vitest/config";

// Three projects, from fast to slow:
//  unit         pure logic, no processes; runs in seconds
//  integration  real Redis and HTTP receivers on 127.0.0.1 (*.int.test.ts)
//  e2e          one real kube-apiserver + etcd + Redis per run (*.e2e.test.ts)
export default defineConfig({
  test: {
    // the fault suite's table before the summary line, which CI reads as the last one
    reporters: ["default", "./test/faults/fault-table-reporter.ts", "./test/env/summary-reporter.ts"],
    projects: [
      {
        test: {
          name: "unit",
          include: ["{contract,common,operator,dispatcher,test}/**/*.test.ts"],
          exclude: ["**/*.int.test.ts", "**/*.e2e.test.ts", "**/node_modules/**"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["{contract,common,operator,dispatcher,test}/**/*.int.test.ts"],
          globalSetup: ["test/env/redis-global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["{contract,common,operator,dispatcher,test}/**/*.e2e.test.ts"],
          globalSetup: ["test/env/cluster-global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
