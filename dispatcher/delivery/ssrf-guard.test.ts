import { describe, expect, it } from "vitest";
import { DestinationRefusedError, destinationPolicy } from "./ssrf-guard.ts";

describe("destinationPolicy", () => {
  const strict = destinationPolicy([]);

  it.each([
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "::1",
    "::",
    "fe80::1",
    "fd00:ec2::254",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "[::1]",
    "168.63.129.16",
    "::127.0.0.1",
    "::7f00:1",
    "::a00:1",
    "::ffff:0:7f00:1",
    "::ffff:0:10.0.0.1",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::",
    "64:ff9b::7f00:1",
    "64:ff9b::10.0.0.1",
    "64:ff9b:1::a9fe:a9fe",
    "[::ffff:0:7f00:1]",
  ])("refuses %s", (address) => {
    expect(strict.allows(address)).toBe(false);
  });

  it.each(["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])("allows public %s", (address) => {
    expect(strict.allows(address)).toBe(true);
  });

  it.each(["2002:5db8:d822::1", "::ffff:8.8.8.8"])(
    "allows %s, which embeds a public IPv4 address",
    (address) => {
      expect(strict.allows(address)).toBe(true);
    },
  );

  it("checks the IPv4 address an IPv6 form embeds against the allowlist too", () => {
    const policy = destinationPolicy(["127.0.0.1"]);
    expect(policy.allows("::ffff:127.0.0.1")).toBe(true);
    expect(policy.allows("::127.0.0.1")).toBe(true);
    expect(policy.allows("::127.0.0.2")).toBe(false);
    expect(policy.allows("2002:7f00:2::1")).toBe(false);
    expect(destinationPolicy(["127.0.0.1", "2002::/16"]).allows("2002:7f00:1::1")).toBe(true);
  });

  it("allows what the allowlist names, and only that", () => {
    const policy = destinationPolicy(["127.0.0.1", "10.20.0.0/16", "fd00::/8"]);
    expect(policy.allows("127.0.0.1")).toBe(true);
    expect(policy.allows("127.0.0.2")).toBe(false);
    expect(policy.allows("10.20.5.5")).toBe(true);
    expect(policy.allows("10.21.0.1")).toBe(false);
    expect(policy.allows("fd00::5")).toBe(true);
    expect(policy.allows("169.254.169.254")).toBe(false);
  });

  it("checks the resolved address of a name", async () => {
    const resolve = (policy: ReturnType<typeof destinationPolicy>) =>
      new Promise<unknown>((resolve, reject) =>
        policy.lookup("localhost", { all: true }, (error, addresses) =>
          error ? reject(error) : resolve(addresses),
        ),
      );
    await expect(resolve(strict)).rejects.toBeInstanceOf(DestinationRefusedError);
    // the message names the host and the rule, never the address it resolved to
    await expect(resolve(strict)).rejects.toThrow("localhost: destination not allowed");
    await expect(resolve(strict)).rejects.not.toThrow(/127\.0\.0\.1|::1/);
    await expect(resolve(destinationPolicy(["127.0.0.1", "::1"]))).resolves.toEqual(
      expect.arrayContaining([expect.objectContaining({ address: "127.0.0.1" })]),
    );
  });

  it("rejects malformed allowlist entries", () => {
    expect(() => destinationPolicy(["example.com"])).toThrow(/not an IP or CIDR/);
    expect(() => destinationPolicy(["10.0.0.0/40"])).toThrow(/prefix length/);
  });
});
