//go:build linux

package region_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/region"
)

// hostileReadersEnv, set, makes TestGobHostileEntryKeepsReadersAlive the child it starts.
const hostileReadersEnv = "DOGPILE_TEST_HOSTILE_GOB_READERS"

// 100 readers at once of Gob entries that declare maps of 2^22 and 2^31 entries, in a process
// with little memory: every read is a miss, every backend read a malformed error, and the
// process lives. The
// readers run in a child process (this test binary, run again), so that a failure kills the
// child and not the tests.
func TestGobHostileEntryKeepsReadersAlive(t *testing.T) {
	if os.Getenv(hostileReadersEnv) != "" {
		hostileReaders()
		return
	}
	if testing.Short() {
		t.Skip("starts a process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGobHostileEntryKeepsReadersAlive$", "-test.count=1")
	cmd.Env = append(os.Environ(), hostileReadersEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 2000 {
			out = out[:2000]
		}
		t.Fatalf("the readers' process died: %v\n%s", err, out)
	}
	// Readers that share one backend read share its decoding and its one error: as many
	// malformed errors as reads, between 1 and 100.
	var misses, malformed int
	i := bytes.Index(out, []byte("misses="))
	if i < 0 {
		t.Fatalf("the readers' process said:\n%s\nwant a line of counts", out)
	}
	if _, err := fmt.Sscanf(string(out[i:]), "misses=%d malformed=%d", &misses, &malformed); err != nil ||
		misses != 100 || malformed < 1 || malformed > 100 {
		t.Fatalf("the readers' process said:\n%s\nwant misses=100 and between 1 and 100 malformed errors", out)
	}
}

// hostileReaders is the child: it caps its memory, then reads.
func hostileReaders() {
	debug.SetMemoryLimit(64 << 20)
	if !raceEnabled { // a hard cap too, where the race detector's shadow memory does not forbid it
		lim := syscall.Rlimit{Cur: 2 << 30, Max: 2 << 30}
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, &lim); err != nil {
			fmt.Println("setrlimit:", err)
			os.Exit(3)
		}
	}
	ctx := context.Background()
	be := memory.New(memory.WithCopy())
	r := region.New("hostile", region.WithCodec(region.Gob), region.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err := r.Configure(be); err != nil {
		panic(err)
	}
	defer r.Close()
	keys := []string{"declares-2^22", "declares-2^31"}
	for i, n := range []uint64{1 << 22, 1 << 31} {
		if err := be.Set(ctx, keys[i], hostileGobEntry(n), 0); err != nil {
			panic(err)
		}
	}
	v := region.NewView[map[string]int](r)
	var misses atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if m, ok, err := v.Get(ctx, keys[i%2]); !ok && err == nil && m == nil {
				misses.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("misses=%d malformed=%d\n", misses.Load(), r.Stats().Errors.Malformed)
}
