-- Test driver: runs the socket proxy's pure Lua modules outside HAProxy (tests/unit/socketproxy/
-- lua.py). Reads calls from stdin, each a function name and its string arguments, every field
-- framed as "<length>\n<bytes>"; answers each with its results framed the same way ("-1\n" for
-- nil). Runs until stdin closes, so one process serves a whole test module.
local dir = arg[1]
local scan = dofile(dir .. "/scan.lua")
local query = dofile(dir .. "/query.lua")

local function split(text, sep)
  local out = {}
  for part in string.gmatch(text, "[^" .. sep .. "]+") do out[#out + 1] = part end
  return out
end

local CALLS = {
  strip_env = function(body) return scan.strip_env(body) end,
  top_level_string = function(body, key) return scan.top_level_string(body, key) end,
  filters = function(text)
    local parsed = query.parse_filters(text)
    if parsed == nil then return nil end
    return query.encode_filters(parsed)
  end,
  -- ids: "name=id,..." standing for the engine's answers
  canonical = function(raw, spec, owned, names, ids)
    local known = {}
    for _, pair in ipairs(split(ids, ",")) do
      local name, id = string.match(pair, "^([^=]+)=(.*)$")
      known[name] = id
    end
    local out, why = query.canonical(raw, spec, owned, split(names, ","), function(wanted)
      local found = {}
      for _, name in ipairs(wanted) do found[name] = known[name] end
      return found
    end)
    return out, why
  end,
}

local function field()
  local size = io.read("l")
  if size == nil then return nil end
  size = tonumber(size)
  if size == 0 then return "" end -- io.read(0) would wait for a byte to test for the end
  return io.read(size)
end

local function put(value)
  if value == nil then
    io.write("-1\n")
  else
    value = tostring(value)
    io.write(#value, "\n", value)
  end
end

while true do
  local name = field()
  if name == nil then break end
  local count = tonumber(field())
  local args = {}
  for i = 1, count do args[i] = field() end
  local ok, a, b = pcall(CALLS[name], table.unpack(args, 1, count))
  if ok then
    put("ok"); put(a); put(b)
  else
    put("error"); put(a); put(nil)
  end
  io.flush()
end
