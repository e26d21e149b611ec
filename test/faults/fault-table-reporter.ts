import type { Reporter, TestModule } from "vitest/node";
import { type FaultRow, formatTable } from "./fault-table.ts";

/**
 * Prints the fault suite's table once, after every file ran: the rows the scenarios attached to
 * their tests (fault-table.ts). Prints nothing when no fault scenario ran.
 */
export default class FaultTableReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const rows: Array<{ row: FaultRow; passed: boolean }> = [];
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const passed = test.result().state === "passed";
        for (const row of test.meta().faults ?? []) rows.push({ row, passed });
      }
    }
    if (rows.length === 0) return;
    const failed = rows.some((r) => !r.passed)
      ? "\n✗: that scenario failed; its numbers are as measured"
      : "";
    process.stdout.write(`\nFault suite (test/faults)\n${formatTable(rows)}${failed}\n`);
  }
}
