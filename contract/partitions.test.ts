import { describe, expect, it } from "vitest";
import { type Keyspace, keyspace } from "./keys.ts";
import { crc16, keySlot, partitionedKeyspace, partitionTags, slotRanges } from "./partitions.ts";
import { redisAclRules } from "./redis-acl.ts";

describe("partitions", () => {
  it("hashes as Redis Cluster does (CLUSTER KEYSLOT)", () => {
    expect(crc16("123456789")).toBe(0x31c3);
    expect(keySlot("foo")).toBe(12182);
    expect(keySlot("{dataforce}:events")).toBe(keySlot("dataforce"));
    expect(keySlot("{}:x")).toBe(crc16("{}:x") % 16384);
  });

  it("is the unpartitioned keyspace with one partition, and keeps it as partition 0", () => {
    const spelled = (keys: Keyspace) => ({
      ...Object.fromEntries(Object.entries(keys).filter(([, value]) => typeof value === "string")),
      delivery: keys.delivery("d"),
      event: keys.event("ns", "e"),
      logWebhook: keys.logWebhook("ns", "w"),
    });
    const one = partitionedKeyspace("dataforce");
    expect(one.all.map(spelled)).toEqual([spelled(keyspace("dataforce"))]);
    expect(spelled(one.of("any"))).toEqual(spelled(keyspace("dataforce")));
    const three = partitionedKeyspace("dataforce", 3);
    expect(spelled(three.global)).toEqual(spelled(keyspace("dataforce")));
    expect(three.all.map((keys) => keys.prefix)).toEqual([
      "{dataforce}:",
      "{dataforce:1}:",
      "{dataforce:2.1}:",
    ]);
    // the global keys are partition 0's in every partition
    for (const keys of three.all) {
      expect(keys.routing).toBe("{dataforce}:routing");
      expect(keys.recordLimits).toBe("{dataforce}:record-limits");
      expect(keys.routingChannel).toBe("{dataforce}:routing:changed");
    }
    expect(three.all[2]!.deliveries).toBe("{dataforce:2.1}:deliveries");
  });

  it("puts each partition in its own share of the slots, as redis-cli cuts them among masters", () => {
    expect(slotRanges(3)).toEqual([
      [0, 5460],
      [5461, 10922],
      [10923, 16383],
    ]);
    for (const count of [2, 3, 4, 6, 9]) {
      const ranges = slotRanges(count);
      const used = partitionTags("dataforce", count).map((tag) =>
        ranges.findIndex(([first, last]) => keySlot(tag) >= first && keySlot(tag) <= last),
      );
      expect(new Set(used).size).toBe(count);
    }
  });

  it("sends a namespace always to the same partition, and spreads namespaces", () => {
    const partitions = partitionedKeyspace("x", 3);
    const counts = [0, 0, 0];
    for (let i = 0; i < 300; i++) counts[partitions.indexOf(`team-${i}`)]!++;
    expect(Math.min(...counts)).toBeGreaterThan(60);
    expect(partitions.of("team-7")).toBe(partitions.all[partitions.indexOf("team-7")]);
  });

  it("refuses counts out of range", () => {
    expect(() => partitionedKeyspace("x", 0)).toThrow();
    expect(() => partitionedKeyspace("x", 65)).toThrow();
    expect(() => partitionedKeyspace("a:b", 2)).toThrow();
  });

  it("gives the ACL users every partition's keys, and the dispatcher still no write on the routing", () => {
    const partitions = partitionedKeyspace("dataforce", 4);
    const patterns = (role: "operator" | "dispatcher", access: "~" | "%R~") =>
      redisAclRules(role, "dataforce")
        .filter((rule) => rule.startsWith(access))
        .map((rule) => globRegExp(rule.slice(access.length)));
    const writable = patterns("dispatcher", "~");
    for (const keys of partitions.all) {
      for (const key of [
        keys.events,
        keys.deliveries,
        keys.scheduled,
        keys.status,
        keys.delivery("d-1"),
        keys.event("ns", "e"),
        keys.logAll,
        keys.logWebhook("ns", "w"),
        keys.logFailed,
        keys.deadLetters,
      ]) {
        expect(writable.some((pattern) => pattern.test(key))).toBe(true);
        expect(patterns("operator", "~").some((pattern) => pattern.test(key))).toBe(true);
      }
    }
    expect(writable.some((pattern) => pattern.test(partitions.global.routing))).toBe(false);
    expect(patterns("dispatcher", "%R~").some((pattern) => pattern.test(partitions.global.routing))).toBe(
      true,
    );
    // another installation's keys
    for (const key of ["{dataforce2}:events", "{other}:deliveries", "{dataforce-x}:events"]) {
      expect(writable.some((pattern) => pattern.test(key))).toBe(false);
    }
  });
});

/** A Redis glob (`*`, `\\` escapes) as a regular expression. */
function globRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === "\\") source += `\\${glob[++i]}`;
    else if (char === "*") source += ".*";
    else if (char === "?") source += ".";
    else source += char.replace(/[.+^${}()|[\]]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}
