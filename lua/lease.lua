-- Partition leases of the payment role: one owner per partition, an epoch that grows on
-- every new owner (it fences stale owners' offset commits in MySQL).
--
-- KEYS[1] lease (string "owner|epoch")  KEYS[2] epoch counter
-- ARGV[1] 'acquire' | 'renew' | 'release'  ARGV[2] owner id  ARGV[3] TTL (ms)
-- ARGV[4] epoch held (renew, release)
-- acquire: the new epoch, or 0 when someone holds it
-- renew:   1 when still ours (TTL reset), 0 when lost
-- release: 1 when deleted, 0 when it was not ours
local current = redis.call('GET', KEYS[1])
local mine = ARGV[2] .. '|' .. (ARGV[4] or '')
if ARGV[1] == 'acquire' then
  if current then
    return 0
  end
  local epoch = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[2] .. '|' .. epoch, 'PX', ARGV[3])
  return epoch
elseif ARGV[1] == 'renew' then
  if current == mine then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 1
  end
  return 0
else
  if current == mine then
    redis.call('DEL', KEYS[1])
    return 1
  end
  return 0
end
