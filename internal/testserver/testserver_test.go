package testserver

import "testing"

func TestStopStart(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *Server{"redis": StartRedis, "memcached": StartMemcached} {
		t.Run(name, func(t *testing.T) {
			s := start(t)
			if err := s.ready(s.Addr); err != nil {
				t.Fatal(err)
			}
			s.Stop()
			if err := s.ready(s.Addr); err == nil {
				t.Fatal("the server still answers after Stop")
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			if err := s.ready(s.Addr); err != nil {
				t.Fatalf("after Start on the same port: %v", err)
			}
		})
	}
}
