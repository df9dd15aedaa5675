#!/usr/bin/env bash
# The GPU benchmarks in one go, for when a GPU is at hand: pretraining the `small` preset in bf16
# against the tuned HF Trainer, LoRA against full fine-tuning (torch's peak allocation), and the
# local LLM server under 8 concurrent clients. Under 8 minutes on one GPU. Each benchmark's table
# goes to stderr and its JSON line to stdout, one line per benchmark; the results are kept in
# benchmarks/results/gpu/ (MLSTACK_BENCH_RESULTS moves them).
#
#   benchmarks/gpu.sh            # on a machine with an NVIDIA GPU and `make install` done
#   benchmarks/gpu.sh --smoke    # anywhere, on a CPU, at smoke size: shows the script works;
#                                # its results go to a temporary folder, never beside real ones
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

if [[ "${1:-}" == "--smoke" ]]; then
  export MLSTACK_BENCH_RESULTS=${MLSTACK_BENCH_RESULTS:-$(mktemp -d -t mlstack-gpu-smoke-XXXX)}
  pretraining=(--preset tiny --steps 3 --packages click --repeats 1)
  finetuning=(--steps 2 --hidden 64 --layers 2)
  llm_server=(--repeats 2 --clients 2 --rounds 1)
else
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu.sh: torch sees no CUDA device here; on a CPU run \`benchmarks/gpu.sh --smoke\`" >&2
    exit 2
  fi
  export MLSTACK_BENCH_RESULTS=${MLSTACK_BENCH_RESULTS:-benchmarks/results/gpu}
  pretraining=(--preset small --steps 60 --repeats 3)
  finetuning=(--steps 30)
  llm_server=(--repeats 10 --clients 8 --rounds 5)
fi
export MLSTACK_HOME=${MLSTACK_HOME:-$(mktemp -d -t mlstack-gpu-home-XXXX)}

run() {
  local name=$1 out
  shift
  out=$(mktemp)
  echo "== $name $*" >&2
  "$PY" "benchmarks/$name.py" "$@" >"$out"
  head -n -1 "$out" >&2
  tail -n 1 "$out"
  rm -f "$out"
}

run pretraining "${pretraining[@]}"
run finetuning "${finetuning[@]}"
run llm_server "${llm_server[@]}"
echo "results kept in $MLSTACK_BENCH_RESULTS" >&2
