/**
 * One row per fault scenario, and the table they make. A test attaches its rows to its own task
 * (`task.meta.faults`); the reporter (fault-table-reporter.ts) collects the rows of every file in
 * the main process after the run and prints one table, so files may run in any order or in
 * parallel without sharing anything.
 */
import type { Accounting, LoadResult } from "./load.ts";

export interface FaultRow {
  /** Position in the table (the scenarios' order in the issue), not the order files ran in. */
  readonly order: number;
  readonly fault: string;
  readonly eventsPerSecond: number;
  readonly deliveries: number;
  readonly sent: number;
  readonly failed: number;
  readonly duplicated: number;
  readonly lost: number;
  /** What the design promises for `lost`, as asserted: "0", "≤ …", or "counted". */
  readonly lostPromise: string;
  /** Outage, loss window, catch-up: what a reader needs to judge the numbers. */
  readonly notes: string;
}

declare module "vitest" {
  interface TaskMeta {
    /** The rows of this test (one per fault; a test may measure several side by side). */
    faults?: FaultRow[];
  }
}

export function faultRow(
  order: number,
  fault: string,
  load: LoadResult,
  counts: Accounting,
  lostPromise: string,
  notes: string,
): FaultRow {
  return {
    order,
    fault,
    eventsPerSecond: load.eventsPerSecond,
    deliveries: counts.deliveries,
    sent: counts.sent,
    failed: counts.failed,
    duplicated: counts.duplicated,
    lost: counts.lost,
    lostPromise,
    notes,
  };
}

/** Attaches the row to the running test (for the table) and logs it (for the test's own output). */
export function reportRow(task: { meta: { faults?: FaultRow[] } }, row: FaultRow): void {
  // a retried test reports its fault again: the last attempt's numbers replace the earlier ones
  task.meta.faults = [...(task.meta.faults ?? []).filter((known) => known.fault !== row.fault), row];
  console.log(`fault | ${formatRow(row, "").join(" | ")}`);
}

const HEADER = [
  "fault",
  "events/s",
  "deliveries",
  "sent",
  "failed",
  "duplicated",
  "lost",
  "lost promised",
  "notes",
];

function formatRow(row: FaultRow, mark: string): string[] {
  return [
    `${row.fault}${mark}`,
    String(row.eventsPerSecond),
    String(row.deliveries),
    String(row.sent),
    String(row.failed),
    String(row.duplicated),
    String(row.lost),
    row.lostPromise,
    row.notes,
  ];
}

/** A Markdown table (it goes into the README as printed); `failed` rows are marked. */
export function formatTable(rows: ReadonlyArray<{ row: FaultRow; passed: boolean }>): string {
  const sorted = [...rows].sort((a, b) => a.row.order - b.row.order);
  const lines = [
    HEADER,
    HEADER.map(() => "---"),
    ...sorted.map((r) => formatRow(r.row, r.passed ? "" : " ✗")),
  ];
  return lines.map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}
