package dogpile

import "testing"

func TestPanicErrorMessageHasValueAndStack(t *testing.T) {
	err := &PanicError{Value: "oops", Stack: []byte("goroutine 1 [running]:")}
	if got := err.Error(); got != "dogpile: creator panicked: oops\n\ngoroutine 1 [running]:" {
		t.Fatalf("Error() = %q", got)
	}
}
