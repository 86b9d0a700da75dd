module github.com/dogpile-go/dogpile

go 1.25

require (
	github.com/google/go-cmp v0.7.0
	github.com/maypok86/otter/v2 v2.4.0
	go.uber.org/goleak v1.3.0
)
