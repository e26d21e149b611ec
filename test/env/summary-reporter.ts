import type { Reporter, TestModule } from "vitest/node";

/**
 * Ends the run with one plain line, `vitest: N passed, N failed, N skipped`, which CI
 * reads as the test count whatever reporter prints above it, followed by one line per
 * failure (file, test, the error's first lines joined): CI keeps only the tail of the output,
 * and the default reporter prints failures far above it. Tests that passed only when retried
 * (vitest.config.ts) are listed too, as FLAKY.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const failures: string[] = [];
    const flaky: string[] = [];
    for (const module of testModules) {
      let failedInModule = 0;
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state === "passed") {
          passed++;
          if (test.diagnostic()?.flaky) flaky.push(`${module.moduleId} > ${test.fullName}`);
        } else if (result.state === "failed") {
          failedInModule++;
          failures.push(`${module.moduleId} > ${test.fullName}: ${headOf(result.errors?.[0]?.message)}`);
        } else skipped++;
      }
      // A file that fails to load, or whose beforeAll throws, fails without a failed
      // test of its own; it must still count as a failure.
      if (module.state() === "failed" && failedInModule === 0) {
        failedInModule = 1;
        failures.push(`${module.moduleId}: ${headOf(module.errors()[0]?.message)}`);
      }
      failed += failedInModule;
    }
    const relative = (line: string) => line.replace(`${process.cwd()}/`, "");
    const listed = [
      ...failures.map((line) => `  FAILED ${relative(line)}\n`),
      ...flaky.map((line) => `  FLAKY (passed on retry) ${relative(line)}\n`),
    ].join("");
    process.stdout.write(`\nvitest: ${passed} passed, ${failed} failed, ${skipped} skipped\n${listed}`);
  }
}

/**
 * The error's first three non-empty lines on one line: the first names what failed, the
 * next ones often say why (a command's stderr, a server's message).
 */
function headOf(message: string | undefined): string {
  const lines = (message ?? "(no message)")
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  return lines.slice(0, 3).join(" ⏎ ").slice(0, 700);
}
