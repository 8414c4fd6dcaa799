# berth's build, demo and tests. `make demo` and `make test` are the two
# commands of the README; .ci/run calls `make test`.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/berth-dev/berth/engine.Version=$(VERSION)
# berth needs no C: a static binary starts about 1.5 ms sooner than one the
# dynamic loader and cgo's runtime set up, on every command and container.
export CGO_ENABLED = 0

.PHONY: build images demo test test-unit lint bench clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/berth ./cmd/berth-imagetools
	@if [ -d cmd/berth-runtime ]; then $(GO) build -trimpath -o bin/berth-runtime ./cmd/berth-runtime; fi

# Test images: nothing can be pulled here, so berth makes its own.
images:
	hack/mkimages.sh

demo: build images
	hack/demo.sh

# The whole suite: unit tests, the real-kernel tests (as root), the
# interop tests against podman and skopeo. BERTH_BIN makes the CLI tests use
# the binary just built.
test: build images
	hack/deps.sh
	BERTH_BIN=$(CURDIR)/bin/berth $(GO) test -count=1 -timeout 25m ./...
	$(MAKE) lint

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench: build
	bench/run.sh

clean:
	rm -rf bin _out
