package fleettest_test

import (
	"path/filepath"
	"testing"

	_ "github.com/dogpile-go/dogpile/backends/file" // registers file://
)

// fileEnv is a fleet sharing one cache directory; creations are counted in a file beside it.
func fileEnv(t *testing.T) env {
	dir := t.TempDir()
	return env{
		backendURL: func(prefix string, fast bool) string {
			return "file://" + filepath.Join(dir, "cache-"+prefix[:len(prefix)-1])
		},
		counterURL:   func(key string) string { return "file://" + filepath.Join(dir, key) },
		freesOnDeath: true,
	}
}

// TestFileStampedeCreatesOnce: see testStampedeCreatesOnce.
func TestFileStampedeCreatesOnce(t *testing.T) { testStampedeCreatesOnce(t, fileEnv(t)) }

// TestFileKilledLockHolderIsReplaced: a process killed while it holds a lock is replaced at
// once, since the kernel releases its flock; see testKilledLockHolderIsReplaced.
func TestFileKilledLockHolderIsReplaced(t *testing.T) { testKilledLockHolderIsReplaced(t, fileEnv(t)) }

// TestFileWriteWinsOverOlderCreation: see testWriteWinsOverOlderCreation.
func TestFileWriteWinsOverOlderCreation(t *testing.T) { testWriteWinsOverOlderCreation(t, fileEnv(t)) }

// TestFileExpiryCountsFromStore: see testExpiryCountsFromStore.
func TestFileExpiryCountsFromStore(t *testing.T) { testExpiryCountsFromStore(t, fileEnv(t)) }
