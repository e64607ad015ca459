-- IronCurtain socket proxy: a JSON text scanner. Pure Lua, no HAProxy: unit-tested with Debian's
-- lua5.3 (tests/unit/socketproxy/test_lua_scan.py), loaded by socketproxy.lua.
--
-- strip_env(body) walks the whole JSON text (strings with escapes, nesting) and replaces the
-- value of every "Env" key that holds an array with []. It returns nil, so HAProxy refuses the
-- answer, when the text is not one complete, balanced JSON value (e.g. cut at the buffer size).
-- top_level_string(body, key) is the string value of a top-level key of a JSON object, or nil.

local function skip_ws(s, i)
  local _, e = string.find(s, "^[ \t\r\n]*", i)
  return e + 1
end

-- i points at an opening quote; returns the index after the closing quote, or nil.
local function skip_string(s, i)
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if k == nil then return nil end
    if string.sub(s, k, k) == '"' then return k + 1 end
    j = k + 2 -- a backslash escapes the next character
  end
end

-- i points at '[' or '{'; returns the index after its matching close, or nil.
local function skip_container(s, i)
  local depth = 0
  local j = i
  local n = #s
  while j <= n do
    local c = string.sub(s, j, j)
    if c == '"' then
      j = skip_string(s, j)
      if j == nil then return nil end
    else
      if c == "[" or c == "{" then
        depth = depth + 1
      elseif c == "]" or c == "}" then
        depth = depth - 1
        if depth == 0 then return j + 1 end
        if depth < 0 then return nil end
      end
      j = j + 1
    end
  end
  return nil
end

local function strip_env(s)
  if type(s) ~= "string" then return nil end
  local out = {}
  local from = 1 -- start of the text not yet copied to out
  local depth = 0
  local started = false
  local i = skip_ws(s, 1)
  local n = #s
  while i <= n do
    local c = string.sub(s, i, i)
    if c == '"' then
      local after = skip_string(s, i)
      if after == nil then return nil end
      local key = string.sub(s, i, after - 1)
      local colon = skip_ws(s, after)
      if depth > 0 and key == '"Env"' and string.sub(s, colon, colon) == ":" then
        local v = skip_ws(s, colon + 1)
        if string.sub(s, v, v) == "[" then
          local close = skip_container(s, v)
          if close == nil then return nil end
          out[#out + 1] = string.sub(s, from, v - 1)
          out[#out + 1] = "[]"
          from = close
          i = close
        else
          i = after
        end
      else
        i = after
      end
    else
      if c == "[" or c == "{" then
        depth = depth + 1
        started = true
      elseif c == "]" or c == "}" then
        depth = depth - 1
        if depth < 0 then return nil end
        if depth == 0 then
          -- the top-level value is complete: only whitespace may follow
          if skip_ws(s, i + 1) <= n then return nil end
          out[#out + 1] = string.sub(s, from, n)
          return table.concat(out)
        end
      elseif depth == 0 and not string.find(c, "[ \t\r\n]") then
        return nil -- a top-level scalar: not an inspect answer
      end
      i = i + 1
    end
  end
  return nil -- never closed: cut short
end



-- The string value of a top-level key of a JSON object, or nil.
local function top_level_string(s, wanted)
  local depth = 0
  local i = 1
  local n = #s
  while i <= n do
    local c = string.sub(s, i, i)
    if c == '"' then
      local after = skip_string(s, i)
      if after == nil then return nil end
      local colon = skip_ws(s, after)
      if depth == 1 and string.sub(s, colon, colon) == ":" then
        local v = skip_ws(s, colon + 1)
        if string.sub(s, i, after - 1) == '"' .. wanted .. '"' then
          if string.sub(s, v, v) ~= '"' then return nil end
          local close = skip_string(s, v)
          if close == nil then return nil end
          return string.sub(s, v + 1, close - 2)
        end
        i = v
      else
        i = after
      end
    else
      if c == "[" or c == "{" then
        depth = depth + 1
      elseif c == "]" or c == "}" then
        depth = depth - 1
      end
      i = i + 1
    end
  end
  return nil
end

return { strip_env = strip_env, top_level_string = top_level_string }
