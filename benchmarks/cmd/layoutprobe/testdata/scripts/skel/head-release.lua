redis.call('HMGET', KEYS[2], 'id', 'e', 'n', 'r', 'w', 'a')
redis.call('HDEL', KEYS[2], 'id')
redis.call('PEXPIREAT', KEYS[2], 4102444800000 + 0)
redis.call('DEL', KEYS[1])
return 1
