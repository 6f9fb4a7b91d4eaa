#!/usr/bin/env bash
# Character-level language model figures: trains examples/charlm.yaml's
# model on a larger corpus, this project's documentation (README.md and
# docs/*.md concatenated), reports the held-out bits per character per
# epoch and samples a continuation.
#
#   bench/charlm.sh [EPOCHS]     (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-20}
MAAS=${MAAS:-./bin/maas}
[[ -x "$MAAS" ]] || make build >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat README.md docs/*.md >"$work/corpus.txt"
vocab=$(python3 -c "import sys; print(len(set(open(sys.argv[1], encoding='utf-8').read())))" "$work/corpus.txt")
sed -e "s|path: docs/jobspec.md|path: $work/corpus.txt|" \
	-e "s/vocab: [0-9]*/vocab: $vocab/" -e "s/{type: dense, units: [0-9]*}/{type: dense, units: $vocab}/" examples/charlm.yaml >"$work/charlm.yaml"
echo "corpus: $(wc -c <"$work/corpus.txt") bytes, $vocab distinct characters"
"$MAAS" train -f "$work/charlm.yaml" -o "$work/model" --epochs "$epochs" 2>&1 |
	grep -o '"epoch": [0-9]*.*"samples_per_sec": [0-9.]*.*"eval_bits_per_char": [0-9.]*' |
	sed -E 's/"epoch": ([0-9]*).*"samples_per_sec": ([0-9.]*).*"eval_bits_per_char": ([0-9.]*)/epoch \1: \2 samples\/s, held-out \3 bits per character/'
"$MAAS" generate "$work/model" --prompt "The coordinator " --length 200 --temperature 0.6 --seed 1
