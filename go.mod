module github.com/dogpile-go/dogpile

go 1.25

require go.uber.org/goleak v1.3.0

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/maypok86/otter/v2 v2.4.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
)
