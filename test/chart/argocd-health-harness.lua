-- Runs an Argo CD health check the way Argo CD's application controller does (util/lua/lua.go:
-- gopher-lua, Lua 5.1), on a real Lua 5.1 interpreter:
--
--   lua5.1 argocd-health-harness.lua SCRIPT.lua < OBJECT.lua
--
-- OBJECT.lua is a chunk `return { ... }` holding the Kubernetes object as a table literal
-- (test/chart/argocd-lua.ts writes it from the object's JSON). As in Argo CD:
--   * the object is the global `obj`; the script is run as a chunk and returns the health table;
--   * the script sees only the libraries Argo CD opens when resource.customizations.useOpenLibs
--     is off (the default): base, package, table, and an `os` with `time` and `date` only. No
--     string, math, io or debug library, and no string methods (`s:upper()`), which gopher-lua
--     only has when its string library is open;
--   * a status outside Argo CD's health codes becomes Unknown "Lua returned an invalid health
--     status"; a result that is not a table, or a status or message that is not a string, is
--     an error (Argo CD fails to decode it).
-- Prints the status, a NUL byte and the message. Errors go to stderr with exit status 1.

local script_file = arg[1]
if script_file == nil then
  io.stderr:write("usage: lua5.1 argocd-health-harness.lua SCRIPT.lua < OBJECT.lua\n")
  os.exit(2)
end

local function fail(message)
  io.stderr:write(tostring(message), "\n")
  os.exit(1)
end

-- The object: a data-only chunk, run with an empty environment.
local object_chunk, object_error = loadstring(io.read("*a"), "=object")
if object_chunk == nil then fail(object_error) end
setfenv(object_chunk, {})
local object = object_chunk()

-- What Argo CD's VM offers the script.
local sandbox = {}
for _, name in ipairs({
  "assert", "collectgarbage", "dofile", "error", "getfenv", "getmetatable", "ipairs", "load",
  "loadfile", "loadstring", "module", "next", "pairs", "pcall", "print", "rawequal", "rawget",
  "rawset", "require", "select", "setfenv", "setmetatable", "tonumber", "tostring", "type",
  "unpack", "xpcall", "_VERSION",
}) do
  sandbox[name] = _G[name]
end
sandbox._G = sandbox
sandbox.package = package
sandbox.table = table
sandbox.os = { time = os.time, date = os.date }
sandbox.obj = object

local script, script_error = loadfile(script_file)
if script == nil then fail(script_error) end
setfenv(script, sandbox)

-- The harness's own output needs nothing of `string` from here on.
local write, stdout = io.write, io.stdout
getmetatable("").__index = nil

local ok, health = pcall(script)
if not ok then fail(health) end
if type(health) ~= "table" then fail("expect table output from Lua script, not " .. type(health)) end

local status, message = health.status, health.message
if status ~= nil and type(status) ~= "string" then fail("status is a " .. type(status) .. ", not a string") end
if message ~= nil and type(message) ~= "string" then fail("message is a " .. type(message) .. ", not a string") end

local valid = { Unknown = true, Progressing = true, Suspended = true, Healthy = true, Degraded = true, Missing = true }
if not valid[status or ""] then
  status, message = "Unknown", "Lua returned an invalid health status"
end
write(status, "\0", message or "")
stdout:flush()
