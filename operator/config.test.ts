import { describe, expect, it } from "vitest";
import { loadSettings } from "./config.ts";

const KEYS = { OPERATOR_ENCRYPTION_KEYS: "k1:dGVzdC1lbmNyeXB0aW9uLWtleS1vZi0zMi1ieXRlcyE=" };

describe("loadSettings", () => {
  it("has production defaults", () => {
    const settings = loadSettings({ ...KEYS, POD_NAMESPACE: "dataforce-system" });
    expect(settings).toMatchObject({
      redisUrl: "redis://127.0.0.1:6379",
      keyTag: "dataforce",
      port: 8081,
      leaderElection: true,
      leaseNamespace: "dataforce-system",
      leaseName: "dataforce-webhooks-operator",
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      apiQps: 20,
      apiBurst: 40,
      watchNamespaces: [],
    });
    expect(settings.identity).toMatch(/_[0-9a-f-]{36}$/);
  });

  it("reads the chart's environment", () => {
    const settings = loadSettings({
      ...KEYS,
      POD_NAME: "operator-7d9f-abcde",
      OPERATOR_REDIS_URL: "redis://redis:6379/1",
      OPERATOR_KEY_TAG: "prod",
      OPERATOR_LEADER_ELECTION: "false",
      OPERATOR_LEASE_NAMESPACE: "ops",
      OPERATOR_API_QPS: "50",
      OPERATOR_API_BURST: "100",
      OPERATOR_WATCH_NAMESPACES: "team-a, team-b,",
    });
    expect(settings).toMatchObject({
      identity: "operator-7d9f-abcde",
      redisUrl: "redis://redis:6379/1",
      keyTag: "prod",
      leaderElection: false,
      leaseNamespace: "ops",
      apiQps: 50,
      apiBurst: 100,
      watchNamespaces: ["team-a", "team-b"],
    });
  });

  it("names the variable of a problem", () => {
    expect(() => loadSettings({ OPERATOR_PORT: "http", OPERATOR_API_QPS: "-1" })).toThrow(
      /OPERATOR_PORT: [^\n]*\n\s+OPERATOR_API_QPS: /,
    );
    expect(() =>
      loadSettings({ ...KEYS, OPERATOR_LEASE_DURATION_MS: "1000", OPERATOR_RENEW_DEADLINE_MS: "5000" }),
    ).toThrow(/OPERATOR_LEASE_DURATION_MS: need leaseDuration > renewDeadline > retryPeriod/);
  });
});
