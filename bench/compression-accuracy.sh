#!/usr/bin/env bash
# Does compression cost accuracy? Trains examples/mnist-cnn.yaml (3
# epochs, real MNIST, real compute) through `maas local` with 4 workers, once
# per compression mode, evaluates each model on the MNIST test set and fails
# when a mode's test accuracy is more than 0.3 points from the uncompressed
# run's.
#
#   bench/compression-accuracy.sh                 # none, fp16, bf16, int8, topk
#   MODES="none bf16" EPOCHS=1 bench/compression-accuracy.sh
#
# Environment: MAAS (default ./bin/maas; built when missing), SPEC
# (examples/mnist-cnn.yaml), MODES, EPOCHS (the spec's), WORKERS (4),
# TOLERANCE (0.3 points). Writes bench/results/compression-accuracy-<time>.tsv.
set -euo pipefail

cd "$(dirname "$0")/.."

MAAS=${MAAS:-./bin/maas}
SPEC=${SPEC:-examples/mnist-cnn.yaml}
MODES=${MODES:-none fp16 bf16 int8 topk}
WORKERS=${WORKERS:-4}
TOLERANCE=${TOLERANCE:-0.3}
EPOCHS=${EPOCHS:-}

if [[ ! -x "$MAAS" ]]; then
	make build >&2
fi
[[ " $MODES " == *" none "* ]] || { echo "compression-accuracy: MODES must include none, the reference" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p bench/results
out=bench/results/compression-accuracy-$(date +%Y%m%d-%H%M%S).tsv
printf 'mode\ttest_accuracy\tseconds\n' >"$out"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1) (family $(lscpu | sed -n 's/^CPU family: *//p' | head -1), model $(lscpu | sed -n 's/^Model: *//p' | head -1))"
echo "compression-accuracy: $SPEC, $WORKERS workers, on ${cpu:-unknown CPU}" >&2

declare -A acc
for mode in $MODES; do
	spec=$work/spec-$mode.yaml
	cp "$SPEC" "$spec"
	printf '\ncompression: {type: %s}\n' "$mode" >>"$spec"
	args=(local -f "$spec" --workers "$WORKERS" --serve-addr "" --data-dir "$work/data-$mode" -o "$work/model-$mode")
	[[ -n "$EPOCHS" ]] && args+=(--epochs "$EPOCHS")
	start=$(date +%s)
	"$MAAS" "${args[@]}" >"$work/local-$mode.log" 2>&1 || { cat "$work/local-$mode.log" >&2; exit 1; }
	secs=$(($(date +%s) - start))
	a=$("$MAAS" eval "$work/model-$mode" --json | sed -n 's/.*"test_accuracy": *\([0-9.]*\).*/\1/p')
	[[ -n "$a" ]] || { echo "compression-accuracy: no test accuracy for $mode" >&2; exit 1; }
	a=$(printf '%.2f' "$a")
	acc[$mode]=$a
	printf '%s\t%s\t%s\n' "$mode" "$a" "$secs" >>"$out"
	printf '%-5s test accuracy %s%% (%ss)\n' "$mode" "$a" "$secs"
done

fail=0
for mode in $MODES; do
	[[ $mode == none ]] && continue
	d=$(awk -v a="${acc[$mode]}" -v b="${acc[none]}" 'BEGIN { d = a - b; printf "%+.2f", d }')
	if awk -v a="${acc[$mode]}" -v b="${acc[none]}" -v t="$TOLERANCE" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d > t) }'; then
		echo "FAIL $mode: $d points from none (tolerance $TOLERANCE)"
		fail=1
	else
		echo "ok   $mode: $d points from none (tolerance $TOLERANCE)"
	fi
done
echo "results: $out"
exit $fail
