import { describe, expect, it } from "vitest";
import { isScriptInputError } from "./script.ts";

// Replies as Redis 7 and 6.2 word them; only the first group may cost an entry its fan-out.
const reply = (message: string) => Object.assign(new Error(message), { name: "ReplyError" });
const SHA = "14d162ec27ca14c4baa56cc1b87607704c4e0b60";
const in7 = (text: string) => `${text} script: ${SHA}, on @user_script:17.`;
const in6 = (text: string) => `ERR Error running script (call to f_${SHA}): @user_script:17: ${text}`;

describe("isScriptInputError", () => {
  it.each([
    in7("ERR user_script:17: too many results to unpack"),
    in7("ERR user_script:1: attempt to concatenate a nil value"),
    in7("ERR value is not an integer or out of range"),
    in7("ERR wrong number of arguments for 'xadd' command"),
    in6("user_script:17: too many results to unpack"),
  ])("blames the input for %s", (message) => {
    expect(isScriptInputError(reply(message))).toBe(true);
  });

  it.each([
    in7("OOM command not allowed when used memory > 'maxmemory'."),
    in7("WRONGTYPE Operation against a key holding the wrong kind of value"),
    in7("ERR The user executing the script can't run this command or subcommand"),
    in7("ERR Script killed by user with SCRIPT KILL..."),
    in6("@user_script: 17: -OOM command not allowed when used memory > 'maxmemory'."),
    in6("@user_script: 17: -READONLY You can't write against a read only replica."),
    "LOADING Redis is loading the dataset in memory",
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    "READONLY You can't write against a read only replica.",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "NOPERM this user has no permissions to run the 'evalsha' command",
    "ERR Protocol error: invalid bulk length",
  ])("does not blame the input for %s", (message) => {
    expect(isScriptInputError(reply(message))).toBe(false);
  });

  it("never blames the input for errors that are not Redis's replies", () => {
    expect(isScriptInputError(new Error(in7("ERR user_script:1: too many results to unpack")))).toBe(false);
    expect(isScriptInputError(new Error("Connection is closed."))).toBe(false);
    expect(isScriptInputError("ERR")).toBe(false);
  });
});
