-- IronCurtain socket proxy helpers for HAProxy: the glue between HAProxy and the pure modules
-- beside this file (scan.lua: the JSON scanner; query.lua: the query allowlist), which are
-- unit-tested outside HAProxy with Debian's lua5.3.
--
-- lua.visible_id (action): a container-scoped request that names a full container ID is let
-- through only if the engine says that ID belongs to one of the declared visible names.
-- lua.query (action): the request's query is checked against its rule's allowlist and replaced
-- by the canonical query rebuilt from the checked values; a refusal sets txn.refusal.
-- lua.inspect_reply (action): an inspect answer with every "Env" array emptied, or a 502.

local here = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
local scan = dofile(here .. "scan.lua")
local query = dofile(here .. "query.lua")

local function split(names)
  local out = {}
  for name in string.gmatch(names, "[^,]+") do out[#out + 1] = name end
  return out
end

-- The engine's inspect answer for REF (a name or full ID): its body, or nil.
local function inspect(socket_path, ref)
  local sock = core.tcp()
  sock:settimeout(5)
  if not sock:connect("unix@" .. socket_path) then return nil end
  sock:send("GET /containers/" .. ref .. "/json HTTP/1.0\r\nHost: docker\r\n\r\n")
  local answer = sock:receive("*a")
  sock:close()
  if answer == nil then return nil end
  if not string.find(answer, "^HTTP/1%.[01] 200 ") then return nil end
  local head_end = string.find(answer, "\r\n\r\n", 1, true)
  if head_end == nil then return nil end
  return string.sub(answer, head_end + 4)
end

-- Ask the engine which container an ID names: its "/name", or nil.
local function name_of(socket_path, id)
  local body = inspect(socket_path, id)
  if body == nil or scan.top_level_string(body, "Id") ~= id then return nil end
  return scan.top_level_string(body, "Name")
end

-- The full IDs of the visible names that exist now: {name = id}.
local function ids_of(socket_path, names)
  local ids = {}
  for _, name in ipairs(names) do
    local body = inspect(socket_path, name)
    if body ~= nil and scan.top_level_string(body, "Name") == "/" .. name then
      local id = scan.top_level_string(body, "Id")
      if id ~= nil and #id == 64 and not string.find(id, "[^0-9a-f]") then ids[name] = id end
    end
  end
  return ids
end

local ENDPOINT_RULE = { json = "inspect", logs = "logs", stats = "stats", top = "top" }

core.register_action("visible_id", { "http-req" }, function(txn, names, socket_path)
  local path = txn.sf:path()
  local id, endpoint = string.match(path, "/containers/(%x+)/(%a+)$")
  txn:unset_var("txn.rule")
  if id == nil or #id ~= 64 or string.find(id, "[A-F]") or ENDPOINT_RULE[endpoint] == nil then
    return
  end
  local name = name_of(socket_path, id)
  if name == nil then return end
  for visible in string.gmatch(names, "[^,]+") do
    if name == "/" .. visible then
      txn:set_var("txn.rule", ENDPOINT_RULE[endpoint])
      return
    end
  end
end, 2)

-- lua.query (http-req action, once the rule is known): spec, owned filters, visible names,
-- socket path, as rendered from ironcurtain.socketproxy.rules ("-" for an empty argument).
core.register_action("query", { "http-req" }, function(txn, spec, owned, names, socket_path)
  if spec == "-" then spec = "" end
  if owned == "-" then owned = "" end
  if names == "-" then names = "" end
  local visible = split(names)
  local canonical, why = query.canonical(txn.sf:query() or "", spec, owned, visible,
    function(wanted) return ids_of(socket_path, wanted) end)
  if canonical == nil then
    txn:set_var("txn.refusal", why)
    return
  end
  local path = txn.sf:path()
  if canonical == "" then
    txn.http:req_set_uri(path)
  else
    txn.http:req_set_uri(path .. "?" .. canonical)
  end
  txn:set_var("txn.checked", "1")
end, 4)

-- lua.inspect_reply (http-res action, after wait-for-body): answer with the stripped inspect body,
-- or refuse with a 502 when the body cannot be parsed whole (e.g. larger than the buffer).
core.register_action("inspect_reply", { "http-res" }, function(txn)
  local stripped = scan.strip_env(txn.sf:res_body())
  local reply = txn:reply()
  if stripped == nil then
    reply:set_status(502, "Bad Gateway")
    reply:add_header("content-type", "text/plain")
    reply:set_body("refused by the IronCurtain socket proxy: the inspect answer could not be "
      .. "read whole, so its environment could not be stripped\n")
  else
    reply:set_status(200, "OK")
    reply:add_header("content-type", "application/json")
    reply:set_body(stripped)
  end
  txn:done(reply)
end, 0)
