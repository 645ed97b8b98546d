redis.call('TIME')
redis.call('HMGET', KEYS[1], 'id', 'e', 'n', 'a', 'w')
redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[4], 'GET')
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'e', '1765123456789', 'a', '1765123456789', 'n', '176512345678901', 'k', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, 176512345678901, 1765123456789, 1765123456789}
