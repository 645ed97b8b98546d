redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], '|||176512345678901||', 'PXAT', '4102444800000')
redis.call('DEL', KEYS[1])
return 1
