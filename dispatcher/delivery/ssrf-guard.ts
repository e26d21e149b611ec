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
  ["100::", 64], // discard
  ["2001:db8::", 32], // documentation
  ["fc00::", 7], // unique local, incl. fd00:ec2::254 (AWS metadata)
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
];

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

  function allows(address: string): boolean {
    const plain = unmapIpv4(address.replace(/^\[|\]$/g, ""));
    const family = isIP(plain);
    if (family === 0) return false;
    const type = family === 4 ? "ipv4" : "ipv6";
    return allowed.check(plain, type) || !refused.check(plain, type);
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
            new DestinationRefusedError(
              `${hostname} resolves to ${refusedAddress?.address ?? "nothing"}, which is not an allowed destination`,
            ),
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

/** `::ffff:10.0.0.1` is 10.0.0.1 on the wire: check it as IPv4. */
function unmapIpv4(address: string): string {
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return match ? match[1]! : address;
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
