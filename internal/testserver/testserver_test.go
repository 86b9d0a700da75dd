package testserver

import "testing"

func TestRedisStopStart(t *testing.T) {
	r := StartRedis(t)
	if err := ping(r.Addr); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := ping(r.Addr); err == nil {
		t.Fatal("the server still answers after Stop")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ping(r.Addr); err != nil {
		t.Fatalf("after Start on the same port: %v", err)
	}
}
