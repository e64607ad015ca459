"""The Lua script that decides an escalation atomically, first wins (run inside Redis)."""

DECIDE = """
-- Decide an escalation atomically, first wins, on exactly the record the decider read.
-- KEYS: record, decision (the key this decider writes: a person's, or the auto-reviewer's),
--       wake, pending, history [, remembered: only when remembering]
-- ARGV: decision_json, now, expiry_json, is_expiry, ttl_s, history_maxlen, id,
--       scope_id, scope_json, session_id, verdict, record_as_read, deadline, other,
--       history_record (what the history keeps of the record: Escalation.history_json)
-- `other` is the other decider's key, read only: not among KEYS, because Redis asks read and
-- write permission for every declared key, and neither decider may write the other's.
-- Returns {status, decision_json}: status is ok | decided | late | missing | changed.
local record = redis.call('GET', KEYS[1])
if not record then
  return {'missing', ''}
end
local existing = redis.call('GET', KEYS[2]) or redis.call('GET', ARGV[14])
if existing then
  return {'decided', existing}
end
if record ~= ARGV[12] then
  -- Rewritten since the decider read it: what the human saw is not what is stored.
  return {'changed', ''}
end
local status = 'ok'
local chosen = ARGV[1]
local verdict = ARGV[11]
if ARGV[4] ~= '1' and tonumber(ARGV[2]) > tonumber(ARGV[13]) then
  -- Too late for a human: the escalation expired; record that instead.
  status = 'late'
  chosen = ARGV[3]
  verdict = 'expired'
end
local ttl = tonumber(ARGV[5])
redis.call('SET', KEYS[2], chosen, 'EX', ttl)
redis.call('RPUSH', KEYS[3], '1')
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('ZREM', KEYS[4], ARGV[7])
redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[6], '*',
  'id', ARGV[7], 'session_id', ARGV[10], 'verdict', verdict,
  'escalation', ARGV[15], 'decision', chosen)
if status == 'ok' and ARGV[8] ~= '' and KEYS[6] then
  redis.call('HSET', KEYS[6], ARGV[8], ARGV[9])
  redis.call('EXPIRE', KEYS[6], ttl)
end
return {status, chosen}
"""
