package file

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDocStripeCounts: the package documentation's figures for the two sets of lock stripes
// are the code's.
func TestDocStripeCounts(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("dir/locks/<0..%d>.lock ", lockStripes-1),
		fmt.Sprintf("dir/locks/w<0..%d>.lock ", writeStripes-1),
		fmt.Sprintf("one of %d stripe files", lockStripes),
		fmt.Sprintf("probability 1/%d per pair", lockStripes),
		fmt.Sprintf("flock on one of %d files", writeStripes),
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("doc.go does not say %q", want)
		}
	}
}
