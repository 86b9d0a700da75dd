package memcached

// LockKey is the memcached key of the lock named name, for the tests of package memcached_test.
func LockKey(b *Backend, name string) string { return b.lockKey(name) }
