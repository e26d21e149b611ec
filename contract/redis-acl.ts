import { keyspace } from "./keys.ts";

/**
 * The Redis ACL of each process, as `ACL SETUSER` rules (without the user's name and password).
 *
 * Key patterns are the boundary: the dispatcher may read the routing (signing secrets, sealed;
 * destination URLs) but never write it, so a compromised dispatcher, or anyone holding its
 * password, cannot point a namespace's deliveries at another URL or drop a namespace's routing.
 * The operator writes the routing and runs retries, so it gets the whole keyspace of its tag.
 * Neither gets the keys of another installation's tag.
 *
 * Commands are granted by category and the dangerous ones taken away (FLUSHALL, KEYS, CONFIG,
 * DEBUG, CLIENT KILL, MIGRATE…), and SCAN, which lists key names past the patterns; INFO is given back because ioredis asks it whether Redis is
 * still loading its data before it uses a connection. Script and function management that would
 * disturb the other process (SCRIPT FLUSH, FUNCTION *) is denied.
 *
 * The chart renders the same rules into the embedded Redis's ACL file (`templates/_helpers.tpl`,
 * `dfw.redis.aclRules`); `test/chart` checks that they agree.
 */
export type RedisRole = "operator" | "dispatcher";

const COMMANDS = [
  "-@all",
  "+@read",
  "+@write",
  "+@scripting",
  "+@pubsub",
  "+@connection",
  "+@transaction",
  "-@dangerous",
  "+info",
  // key names of every tenant and installation, whatever the key patterns say
  "-scan",
  "-randomkey",
  "-script|flush",
  "-script|kill",
  "-function",
] as const;

export function redisAclRules(role: RedisRole, tag: string): string[] {
  const keys = keyspace(tag);
  // partition 0 is `{tag}:…`, the others `{tag:…}:…` (partitions.ts): a tag has no `:`, so the
  // second pattern meets no other installation's keys, whatever the partition count
  const prefixes = [escapeGlob(keys.prefix), `${escapeGlob(`{${tag}:`)}*}:`];
  if (role === "operator") {
    return [
      "resetkeys",
      ...prefixes.map((prefix) => `~${prefix}*`),
      "resetchannels",
      `&${prefixes[0]}*`,
      ...COMMANDS,
    ];
  }
  // Every key family the dispatcher writes, spelled out: a glob cannot say "all but routing".
  const written = [
    "events*",
    // the work queue, delivery records and the status stream (`delivery-status`)
    "deliver*",
    "scheduled",
    // the status stream of format 1: still written by dispatchers of that version during an upgrade
    "status",
    "record-limits",
    // per-webhook endpoint health, for the operator
    "endpoint-health",
    "event:*",
    // idempotency markers of format 1 (read until their window ends)
    "seen:*",
    // the event log's indexes (`logs…`), and those of format 1 (`log…`)
    "log*",
    // the durable log store's pending and open sets, horizon and leases (`archive:…`)
    "archive:*",
    // the queues of ordered webhooks (`ordered:<ns>:<webhook>`) and their set (`ordered-queues`)
    "ordered*",
  ];
  return [
    "resetkeys",
    ...prefixes.flatMap((prefix) => written.map((family) => `~${prefix}${family}`)),
    // the routing is global (partition 0's), read only
    `%R~${escapeGlob(keys.routing)}*`,
    "resetchannels",
    `&${escapeGlob(keys.routingChannel)}`,
    ...COMMANDS,
  ];
}

/** The `ACL SETUSER` line an administrator of an external Redis runs (password given in clear). */
export function aclSetUserCommand(role: RedisRole, user: string, tag: string): string {
  return ["ACL SETUSER", user, "reset", "on", "><password>", ...redisAclRules(role, tag)].join(" ");
}

/** Redis globs treat `[`, `]`, `*`, `?` and `\` specially; a key tag may not contain them, but stay safe. */
function escapeGlob(value: string): string {
  return value.replace(/[[\]*?\\]/g, (char) => `\\${char}`);
}
