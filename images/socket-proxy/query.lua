-- IronCurtain socket proxy: the query allowlist. Pure Lua, no HAProxy: unit-tested and fuzzed with
-- Debian's lua5.3 (tests/unit/socketproxy/test_lua_query.py), loaded by socketproxy.lua.
--
-- canonical(raw, spec, owned, names, resolve) checks a request's raw query string against the
-- rule's allowlist (rendered by ironcurtain.socketproxy.rules) and returns the query to forward,
-- rebuilt only from the checked values in a fixed order and encoding, or nil and the reason.
-- The raw string is never forwarded: what the engine reads is exactly what was checked.
--   spec:  "name:kind[=key|key],..."  the parameters taken, e.g. "stdout:bool,tail:tail"
--   owned: "key=value;..."             filters the proxy sets: "@exact", "@ids" or a literal
--   names: the visible container names; resolve(names) -> {name = full ID} (engine I/O, lazy)

local M = {}

-- What the engine's parser would read differently from ours is refused, not interpreted: ';'
-- (a separator to Go before 1.17), raw JSON or quotes (clients percent-encode them), spaces.
local RAW_OK = "^[A-Za-z0-9._~%%&=+,:-]*$"
local MAX_VALUE = 4096
-- A value no container name (first character alphanumeric) and no ID (hex) starts with: the
-- engine treats an empty filter list as no filter at all, so "nothing visible" is this instead.
M.NOTHING = "-"

local function shown(text)
  text = string.gsub(text, "[^A-Za-z0-9_.%-]", "?")
  if #text > 40 then text = string.sub(text, 1, 40) .. "..." end
  return text
end

local function refuse(fmt, ...)
  return nil, string.format(fmt, ...)
end

-- Percent-decoding as Go's url.QueryUnescape: '+' is a space, '%' needs two hex digits.
local function unescape(s)
  if string.find((string.gsub(s, "%%%x%x", "")), "%", 1, true) then return nil end
  s = string.gsub(s, "+", " ")
  return (string.gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function escape(s)
  return (string.gsub(s, "[^A-Za-z0-9._~-]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

function M.parse_spec(spec)
  local params, order = {}, {}
  for entry in string.gmatch(spec, "[^,]+") do
    local name, kind, keys = string.match(entry, "^([^:=|]+):(%a+)(.*)$")
    assert(name ~= nil and (keys == "" or string.sub(keys, 1, 1) == "="), "bad spec " .. entry)
    local allowed = {}
    for key in string.gmatch(string.sub(keys, 2), "[^|]+") do allowed[key] = true end
    params[name] = { kind = kind, keys = allowed }
    order[#order + 1] = name
  end
  return params, order
end

local function parse_owned(owned)
  local out, order = {}, {}
  for entry in string.gmatch(owned, "[^;]+") do
    local key, value = string.match(entry, "^([^=]+)=(.+)$")
    assert(key ~= nil, "bad owned filter " .. entry)
    out[key] = value
    order[#order + 1] = key
  end
  return out, order
end

-- ---- values ------------------------------------------------------------------------------------

local BOOLS = { ["0"] = "0", ["1"] = "1", ["true"] = "1", ["false"] = "0" }

local function uint(v)
  if string.find(v, "^%d+$") and #v <= 9 then return v end
  return nil
end

local CHECK = {
  bool = function(v) return BOOLS[string.lower(v)] end,
  uint = uint,
  limit = function(v) if v == "-1" then return v end return uint(v) end,
  tail = function(v) if v == "all" then return v end return uint(v) end,
  time = function(v)
    local whole, frac = string.match(v, "^(%d+)%.?(%d*)$")
    if whole == nil or #whole > 11 or #frac > 9 then return nil end
    if frac == "" and string.find(v, ".", 1, true) then return nil end
    return v
  end,
  signal = function(v)
    if string.find(v, "^[A-Z0-9]+$") and #v <= 12 then return v end
    return nil
  end,
}

-- ---- filters: a strict JSON reader for {"key": ["v", ...]} or {"key": {"v": true, ...}} --------

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
  r = "\r", t = "\t" }

local function ws(s, i)
  local _, e = string.find(s, "^[ \t\r\n]*", i)
  return e + 1
end

-- s[i] is '"'; the decoded string and the index after its closing quote, or nil. \u escapes
-- are refused (no client needs them in a filter, and they are one more decoding to agree on).
local function jstring(s, i)
  local out, j = {}, i + 1
  while true do
    local k = string.find(s, '["\\\0-\31]', j) -- JSON's control characters: 0-31 only
    if k == nil then return nil end
    out[#out + 1] = string.sub(s, j, k - 1)
    local c = string.sub(s, k, k)
    if c == '"' then return table.concat(out), k + 1 end
    if c ~= "\\" then return nil end -- a raw control character
    local e = ESCAPES[string.sub(s, k + 1, k + 1)]
    if e == nil then return nil end
    out[#out + 1] = e
    j = k + 2
  end
end

-- The values of one key: a list of strings or an object of string: true. Returns values, next.
local function jvalues(s, i)
  local open = string.sub(s, i, i)
  local close = ({ ["["] = "]", ["{"] = "}" })[open]
  if close == nil then return nil end
  local values = {}
  i = ws(s, i + 1)
  if string.sub(s, i, i) == close then return values, i + 1 end
  while true do
    if string.sub(s, i, i) ~= '"' then return nil end
    local v, after = jstring(s, i)
    if v == nil then return nil end
    i = ws(s, after)
    if open == "{" then
      if string.sub(s, i, i) ~= ":" then return nil end
      i = ws(s, i + 1)
      if string.sub(s, i, i + 3) ~= "true" then return nil end
      i = ws(s, i + 4)
    end
    values[#values + 1] = v
    local c = string.sub(s, i, i)
    if c == close then return values, i + 1 end
    if c ~= "," then return nil end
    i = ws(s, i + 1)
  end
end

-- {key = {values}} or nil: one object, no duplicate keys, nothing after it.
function M.parse_filters(s)
  local filters = {}
  local i = ws(s, 1)
  if string.sub(s, i, i) ~= "{" then return nil end
  i = ws(s, i + 1)
  if string.sub(s, i, i) == "}" then
    if ws(s, i + 1) <= #s then return nil end
    return filters
  end
  while true do
    if string.sub(s, i, i) ~= '"' then return nil end
    local key, after = jstring(s, i)
    if key == nil or filters[key] ~= nil then return nil end
    i = ws(s, after)
    if string.sub(s, i, i) ~= ":" then return nil end
    local values, next_i = jvalues(s, ws(s, i + 1))
    if values == nil then return nil end
    filters[key] = values
    i = ws(s, next_i)
    local c = string.sub(s, i, i)
    if c == "}" then
      if ws(s, i + 1) <= #s then return nil end
      return filters
    end
    if c ~= "," then return nil end
    i = ws(s, i + 1)
  end
end

local function jquote(v)
  return '"' .. string.gsub(v, '[%c"\\]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

-- Canonical JSON: keys and values sorted, duplicates dropped, the engine's map form.
function M.encode_filters(filters)
  local keys = {}
  for key in pairs(filters) do keys[#keys + 1] = key end
  table.sort(keys)
  local parts = {}
  for _, key in ipairs(keys) do
    local seen, values = {}, {}
    for _, v in ipairs(filters[key]) do
      if not seen[v] then seen[v] = true; values[#values + 1] = v end
    end
    table.sort(values)
    local inner = {}
    for _, v in ipairs(values) do inner[#inner + 1] = jquote(v) .. ":true" end
    parts[#parts + 1] = jquote(key) .. ":{" .. table.concat(inner, ",") .. "}"
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- ---- owned filters: what the proxy puts in, and how a client's value may narrow it ---------------

local function exact(name)
  return "^/" .. string.gsub(name, "%.", "\\.") .. "$"
end

-- The owned values of KEY and a map from what a client may write to what is forwarded.
local function owned_values(marker, names, ids)
  local values, accepts = {}, {}
  if marker == "@exact" then
    for _, name in ipairs(names) do
      local v = exact(name)
      values[#values + 1] = v
      accepts[name], accepts["/" .. name], accepts[v] = v, v, v
    end
  elseif marker == "@ids" then
    for _, name in ipairs(names) do
      local id = ids[name]
      if id ~= nil then
        values[#values + 1] = id
        accepts[name], accepts[id] = id, id
      else
        accepts[name] = M.NOTHING -- declared but absent: the client sees nothing of it
      end
    end
    if #values == 0 then values[1] = M.NOTHING end
  else
    for v in string.gmatch(marker, "[^|]+") do
      values[#values + 1] = v
      accepts[v] = v
    end
  end
  return values, accepts
end

-- The filters to forward: the client's allowed keys, then every owned key (narrowed by the
-- client's values for it when it sent some). Returns the table, or nil and the reason.
local function merge(client, allowed, owned, owned_order, names, resolve)
  local ids = {}
  for _, key in ipairs(owned_order) do
    if owned[key] == "@ids" then ids = resolve(names) end
  end
  local out = {}
  for key, values in pairs(client) do
    if not allowed[key] then return refuse("the filter %q is not allowed here", shown(key)) end
    if owned[key] == nil and #values > 0 then out[key] = values end
  end
  for _, key in ipairs(owned_order) do
    local values, accepts = owned_values(owned[key], names, ids)
    local asked = client[key]
    if asked ~= nil then
      if #asked == 0 then return refuse("the filter %q needs a value", shown(key)) end
      values = {}
      for _, v in ipairs(asked) do
        if accepts[v] == nil then
          return refuse("the filter %s=%q names nothing visible", shown(key), shown(v))
        end
        values[#values + 1] = accepts[v]
      end
    end
    out[key] = values
  end
  return out
end

-- ---- the query --------------------------------------------------------------------------------

function M.canonical(raw, spec, owned_spec, names, resolve)
  raw = raw or ""
  if not string.find(raw, RAW_OK) then
    return refuse("the query has a character outside [A-Za-z0-9._~%%&=+,:-] (encode it)")
  end
  local params, order = M.parse_spec(spec)
  local owned, owned_order = parse_owned(owned_spec)
  local got = {}
  if raw ~= "" then
    for part in string.gmatch(raw .. "&", "([^&]*)&") do
      local rname, rvalue = string.match(part, "^([^=]*)=?(.*)$")
      local name, value = unescape(rname), unescape(rvalue)
      if name == nil or value == nil then
        return refuse("the query parameter %q has a bad percent-encoding", shown(rname))
      end
      if name == "" then return refuse("the query has an empty parameter name") end
      local param = params[name]
      if param == nil then return refuse("the query parameter %q is not allowed here", shown(name)) end
      if got[name] ~= nil then return refuse("the query parameter %q is repeated", shown(name)) end
      if #value > MAX_VALUE then return refuse("the query parameter %q is too long", shown(name)) end
      if param.kind == "filters" then
        local filters = M.parse_filters(value)
        if filters == nil then
          return refuse("the query parameter %q is not a filter object of string lists", shown(name))
        end
        got[name] = filters
      else
        local canon = CHECK[param.kind](value)
        if canon == nil then
          return refuse("the query parameter %q has a value it does not take: %q", shown(name),
            shown(value))
        end
        got[name] = canon
      end
    end
  end
  local out = {}
  local filters_name
  for _, name in ipairs(order) do
    if params[name].kind == "filters" then
      filters_name = name
    elseif got[name] ~= nil then
      out[#out + 1] = name .. "=" .. escape(got[name])
    end
  end
  if filters_name ~= nil or #owned_order > 0 then
    local name = filters_name or "filters"
    local allowed = filters_name and params[filters_name].keys or {}
    local filters, why = merge(got[name] or {}, allowed, owned, owned_order, names, resolve)
    if filters == nil then return nil, why end
    if next(filters) ~= nil then
      out[#out + 1] = name .. "=" .. escape(M.encode_filters(filters))
    end
  end
  return table.concat(out, "&")
end

return M
