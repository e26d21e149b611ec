import type { DeliveryRecord } from "../../contract/records.ts";

/** A request header as the event log shows it: its value, or why the value is not shown. */
export interface ShownHeader {
  name: string;
  value?: string;
  /** Where the value comes from, when it is not shown or differs per attempt. */
  note?: string;
}

/**
 * The headers a delivery's attempts carry (attempt.ts builds them), as the console and the log
 * API show them: the fixed ones with their values, the signature and the webhook's own headers
 * (configured, maybe from Secrets) by name only. `extraHeaderNames` are the webhook's headers in
 * the current routing: a header added or removed since the last attempt shows as configured now.
 */
export function sentHeaders(
  delivery: Pick<DeliveryRecord, "id" | "attempts">,
  userAgent: string,
  extraHeaderNames: readonly string[],
): ShownHeader[] {
  const latest = delivery.attempts.at(-1);
  const timestamp: ShownHeader = { name: "webhook-timestamp" };
  if (latest === undefined) timestamp.note = "the attempt's start, Unix seconds (no attempt yet)";
  else {
    timestamp.value = String(Math.floor(Date.parse(latest.startedAt) / 1000));
    timestamp.note = `of attempt ${latest.number} (each attempt sends its own)`;
  }
  return [
    ...extraHeaderNames.map((name) => ({ name, note: "configured on the webhook; value not shown" })),
    { name: "content-type", value: "application/json" },
    { name: "user-agent", value: userAgent },
    { name: "webhook-id", value: delivery.id },
    timestamp,
    {
      name: "webhook-signature",
      note: "v1,<HMAC-SHA256 of id.timestamp.body> per signing secret; not shown",
    },
  ];
}
