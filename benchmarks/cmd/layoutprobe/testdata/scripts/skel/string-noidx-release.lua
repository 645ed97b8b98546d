redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], '|||176512345678901||', 'PXAT', '4102444800000')
return 1
