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

// TestFileStampedeAcrossProcesses is issue 5's acceptance test; see testStampede.
func TestFileStampedeAcrossProcesses(t *testing.T) { testStampede(t, fileEnv(t)) }

// TestFileLockHolderKilled: a process killed while it holds a lock is replaced at once, since the
// kernel releases its flock; see testHolderKilled.
func TestFileLockHolderKilled(t *testing.T) { testHolderKilled(t, fileEnv(t)) }

// TestFileWriteWinsAcrossProcesses: see testWriteWins.
func TestFileWriteWinsAcrossProcesses(t *testing.T) { testWriteWins(t, fileEnv(t)) }

// TestFileExpiryFromStored: see testExpiryFromStored.
func TestFileExpiryFromStored(t *testing.T) { testExpiryFromStored(t, fileEnv(t)) }
