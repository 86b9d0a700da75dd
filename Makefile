# Targets for developers and CI. `make test` is what CI runs (.ci/run calls it).
GO ?= go
# The Go of this project's machines lives here; a Go already on PATH comes first.
export PATH := $(PATH):/usr/local/go/bin

PKGS := ./...
BENCHTIME ?= 1s
COUNT ?= 6

.PHONY: test servers race bench bench-peers lint cover fuzz fuzz-ci example

## servers: install the server binaries tests start (redis-server, memcached) when they are missing.
servers:
	@scripts/ensure-servers.sh

## test: install missing server binaries, lint (gofmt, vet, staticcheck), fuzz each target
## briefly (fuzz-ci), then every test and example under the race detector, the library's and the
## metrics modules' (otel/ and prometheus/, modules of their own).
test: servers lint fuzz-ci
	$(GO) test -race -count=1 -timeout 10m $(PKGS)
	cd otel && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...
	cd prometheus && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...

## race: the same as test (every test run here uses -race).
race: test

## bench: the benchmarks with allocation counts, COUNT runs each, for benchstat.
bench: servers
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) $(PKGS)

## bench-peers: dogpile side by side with otter, sturdyc, go-redis/cache, gocache and singleflight
## (the separate module bench/), then BENCHMARKS.md and bench/plots written from what it measured.
## It must finish within 15 minutes on 2 cores; it installs benchstat when it is missing.
bench-peers: servers
	@command -v benchstat >/dev/null 2>&1 || test -x "$$($(GO) env GOPATH)/bin/benchstat" || \
		(cd bench && $(GO) install golang.org/x/perf/cmd/benchstat)
	cd bench && GO=$(GO) $(GO) run ./cmd/report -out ../BENCHMARKS.md

## lint: gofmt (fails on any file it would change), go vet and staticcheck (pinned), on the
## library and on the metrics modules (otel/, prometheus/).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	cd otel && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...
	cd prometheus && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

## cover: tests with a coverage profile, summarised per function.
cover:
	$(GO) test -count=1 -coverprofile=coverage.out $(PKGS)
	$(GO) tool cover -func=coverage.out | tail -1

## fuzz: each fuzz target for FUZZTIME (the seed corpora, in testdata/fuzz, also run in `make
## test`). The decoders' targets (entries, the codecs) fail when one input allocates more than
## the bound the decoder documents.
FUZZTIME ?= 10s
FUZZ_TARGETS := ./keys:FuzzNoCollision ./keys:FuzzRoundTrip ./keys:FuzzEncoderMatchesAppendAny ./backends:FuzzDecodeEntry \
	./region:FuzzGob ./region:FuzzJSON ./region:FuzzRaw ./backends/file:FuzzDecode \
	./cmd/dogpile:FuzzDescribeEntry ./httpcache:FuzzEntry
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) $${t%%:*}; \
	done

## fuzz-ci: every fuzz target for 2,000 inputs (a few seconds each at most), as `make test` (and
## so CI) runs them. A count, not a time: a time-bound run of a target whose inputs are slow (those
## that measure allocations) can end in "context deadline exceeded" while its workers stop.
fuzz-ci:
	$(MAKE) fuzz FUZZTIME=2000x

## example: the README's first command.
example:
	$(GO) run ./examples/stampede
