import { lookup as dnsLookup } from "node:dns";
import { BlockList, isIP, type LookupFunction } from "node:net";

// Webhook URLs are user input: without a guard, anyone who may create a Webhook could make the
// dispatcher POST to the cluster's internal services or the cloud metadata endpoint. The guard
// runs on the *resolved* address, inside the connection's DNS lookup, so a name that resolves to
// a refused range (or is re-pointed to one, "DNS rebinding") is refused too.

const REFUSED_IPV4: ReadonlyArray<[string, number]> = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, incl. the 169.254.169.254 metadata service
  ["168.63.129.16", 32], // Azure host services (wireserver, metadata)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
];

const REFUSED_IPV6: ReadonlyArray<[string, number]> = [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  ["64:ff9b::", 96], // NAT64 (embeds IPv4)
  ["64:ff9b:1::", 48], // local-use NAT64 (embeds IPv4)
  ["100::", 64], // discard
  ["2001:db8::", 32], // documentation
  ["fc00::", 7], // unique local, incl. fd00:ec2::254 (AWS metadata)
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
];

/** What a refused attempt records, for every refused destination alike. */
export const DESTINATION_NOT_ALLOWED =
  "destination not allowed (a private, loopback, link-local or metadata address)";

export class DestinationRefusedError extends Error {
  override readonly name = "DestinationRefusedError";
  readonly code = "DESTINATION_REFUSED";
}

export interface DestinationPolicy {
  /** True when a connection to this IP address may be made. */
  allows(address: string): boolean;
  /** A `net.connect` lookup that resolves as usual, then refuses disallowed addresses. */
  lookup: LookupFunction;
}

/**
 * @param allowlist IPs or CIDRs (`127.0.0.1`, `10.20.0.0/16`, `fd00::/8`) that are allowed even
 *   though they fall in a refused range.
 */
export function destinationPolicy(allowlist: readonly string[]): DestinationPolicy {
  const refused = new BlockList();
  for (const [network, prefix] of REFUSED_IPV4) refused.addSubnet(network, prefix, "ipv4");
  for (const [network, prefix] of REFUSED_IPV6) refused.addSubnet(network, prefix, "ipv6");
  const allowed = new BlockList();
  for (const entry of allowlist) addToList(allowed, entry);

  function allowsAs(address: string, type: "ipv4" | "ipv6"): boolean {
    return allowed.check(address, type) || !refused.check(address, type);
  }

  function allows(address: string): boolean {
    const plain = address.replace(/^\[|\]$/g, "");
    const family = isIP(plain);
    if (family === 0) return false;
    if (family === 4) return allowsAs(plain, "ipv4");
    // an IPv6 form that carries an IPv4 address reaches that address: both must be allowed
    // (mapped ::ffff:a.b.c.d is that IPv4 address on the wire and is checked as IPv4 only)
    const embedded = embeddedIpv4(plain);
    if (embedded?.mapped) return allowsAs(embedded.address, "ipv4");
    if (embedded && !allowsAs(embedded.address, "ipv4")) return false;
    return allowsAs(plain, "ipv6");
  }

  return {
    allows,
    lookup(hostname, options, callback) {
      dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
        if (error) {
          callback(error, options.all ? [] : "");
          return;
        }
        const refusedAddress = addresses.find((entry) => !allows(entry.address));
        if (refusedAddress !== undefined || addresses.length === 0) {
          callback(
            // the resolved address stays out of the message: it lands in the event log and the
            // WebhookEvent, where it would map the cluster's internal DNS for any tenant
            new DestinationRefusedError(`${hostname}: ${DESTINATION_NOT_ALLOWED}`),
            options.all ? [] : "",
          );
          return;
        }
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      });
    },
  };
}

/**
 * The IPv4 address an IPv6 address embeds: IPv4-mapped `::ffff:0:0/96` (`mapped`), IPv4-compatible
 * `::/96`, IPv4-translated `::ffff:0:0:0/96`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48` (last
 * 32 bits) and 6to4 `2002::/16` (bits 16–47).
 */
export function embeddedIpv4(address: string): { address: string; mapped: boolean } | undefined {
  const words = ipv6Words(address);
  if (!words) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zero = (from: number, to: number) => words.slice(from, to).every((word) => word === 0);
  const last = v4(words[6]!, words[7]!);
  if (zero(0, 5) && words[5] === 0xffff) return { address: last, mapped: true };
  if (zero(0, 6)) return { address: last, mapped: false };
  if (zero(0, 4) && words[4] === 0xffff && words[5] === 0) return { address: last, mapped: false };
  if (words[0] === 0x64 && words[1] === 0xff9b && (zero(2, 6) || words[2] === 1)) {
    return { address: last, mapped: false };
  }
  if (words[0] === 0x2002) return { address: v4(words[1]!, words[2]!), mapped: false };
  return undefined;
}

/** The eight 16-bit words of an IPv6 address (without zone), or undefined when it is not one. */
function ipv6Words(address: string): number[] | undefined {
  const text = address.split("%")[0]!;
  if (isIP(text) !== 6) return undefined;
  const parse = (part: string): number[] => {
    if (part === "") return [];
    const words: number[] = [];
    for (const group of part.split(":")) {
      if (group.includes(".")) {
        const [a, b, c, d] = group.split(".").map(Number) as [number, number, number, number];
        words.push((a << 8) | b, (c << 8) | d);
      } else words.push(Number.parseInt(group, 16));
    }
    return words;
  };
  const [head, tail] = text.split("::") as [string, string | undefined];
  const front = parse(head);
  if (tail === undefined) return front;
  const back = parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

function addToList(list: BlockList, entry: string): void {
  const [address, prefix] = entry.trim().split("/");
  const family = isIP(address ?? "");
  if (!address || family === 0)
    throw new Error(`allowlist entry ${JSON.stringify(entry)} is not an IP or CIDR`);
  const type = family === 4 ? "ipv4" : "ipv6";
  if (prefix === undefined) list.addAddress(address, type);
  else {
    const bits = Number(prefix);
    if (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
      throw new Error(`allowlist entry ${JSON.stringify(entry)} has an invalid prefix length`);
    }
    list.addSubnet(address, bits, type);
  }
}

/** Throws when an allowlist entry is malformed (for configuration validation). */
export function validateAllowlistEntry(entry: string): void {
  addToList(new BlockList(), entry);
}
