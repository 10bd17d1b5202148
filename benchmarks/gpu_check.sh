#!/usr/bin/env bash
# One call on a lent GPU machine, within 5 minutes: is RunSpec.cuda_graphs right and faster, and how fast is a
# whole study through the product there. From the repo root, with .wheels/ carried (fill it here first with
# scripts/gpu-wheels: the machine has its own Python and torch, not the web stack):
#   OUT=gpu-out bash benchmarks/gpu_check.sh        # or: bash benchmarks/gpu_check.sh gpu-out
# Each stage writes its log and JSON into the output folder as soon as it ends (a later stage running out of
# time leaves the earlier results in place):
#   1. graphs_check.json   benchmarks/graphs_check.py: graphs vs eager loss curves (mlp, cnn; a failing capture)
#   2. engine.json         benchmarks/engine.py --graphs, batch 64, mlp and cnn: images/s eager vs graphs
#   3. study_*.json        benchmarks/study.py: a shortened MNIST table (6 runs x 1 epoch x 60k) with 1 slot,
#                          then the full one (18 runs x 10 epochs x 60k) with 8 slots in the time left;
#                          summary.txt: run-epochs per second with 8 slots / with 1 slot
# The SQLite database and broker (trainboard serve's defaults). The engine's earlier checks: gpu_check_engine.sh.
# Exit status: that of the graphs check (0 agrees, 1 mismatch, 2 no CUDA), or 1 if the environment failed.
set -uo pipefail
out="${1:-${OUT:-gpu-out}}"; mkdir -p "$out"
started=$SECONDS
budget=285  # seconds for everything, setup included; each stage gets at most what is left
left() { echo $(( budget - (SECONDS - started) )); }
stage() {  # stage NAME LIMIT COMMAND...: run with a time limit, log to $out/NAME.txt
  local name=$1 limit=$2; shift 2
  local remaining; remaining=$(left)
  (( limit > remaining )) && limit=$remaining
  if (( limit < 10 )); then echo "$name: skipped, out of time" | tee "$out/$name.txt"; return 124; fi
  echo "== $name (at most ${limit} s)"
  timeout --signal=INT --kill-after=10 "$limit" "$@" > >(tee "$out/$name.txt") 2>&1
  local rc=$?
  echo "== $name: exit $rc after $(( SECONDS - started )) s in all" | tee -a "$out/$name.txt"
  return $rc
}

# The product's dependencies from .wheels/ into a venv that sees the machine's torch.
venv=/tmp/trainboard-gpu-venv
if [ ! -d .wheels ]; then echo "no .wheels/ here: run scripts/gpu-wheels on the dev machine and carry .wheels" >&2; exit 1; fi
python3 -m venv --system-site-packages --without-pip "$venv" || exit 1
tag=$("$venv/bin/python" -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')
ls .wheels/pydantic_core-*-"$tag"-*.whl > /dev/null 2>&1 \
  || { echo "the wheels are not for this Python ($tag): GPU_PYTHON=<its version> scripts/gpu-wheels" >&2; exit 1; }
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --find-links .wheels \
  -r .wheels/requirements.txt 2>&1 | tee "$out/setup.txt" || exit 1
python="$venv/bin/python"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$python" -c 'import torch, fastapi, celery; print("torch", torch.__version__, "cuda", torch.version.cuda)' \
  | tee -a "$out/gpu.txt" || exit 1

stage graphs_check 50 "$python" benchmarks/graphs_check.py --out "$out"
graphs_rc=$?
stage engine 45 "$python" benchmarks/engine.py --device cuda --dataset mnist --arch mlp cnn --graphs \
  --batch-size 64 --train-size 15000 --test-size 2000 --epochs 2 --warmup 1 --json "$out/engine.json"
# The short 1-slot study first: it surely fits, and it is the baseline of the 8-slot figure.
stage study_short_1slot 40 "$python" benchmarks/study.py --device cuda --slots 1 --runs 6 --epochs 1 \
  --json "$out/study_short_1slot.json"
stage study_full_8slots 300 "$python" benchmarks/study.py --device cuda --slots 8 --json "$out/study_full_8slots.json"
"$python" - "$out" <<'PY' | tee "$out/summary.txt"
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
def load(name):
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None

graphs = load("graphs_check")
print("graphs_check:", "missing" if graphs is None else ("passed" if graphs["passed"] else "FAILED"))
engine = load("engine")
for arch, speedup in (engine or {}).get("graphs_speedup", {}).items():
    print(f"engine {arch}, batch 64: cuda graphs {speedup:.2f}x the eager engine's images/s")
one, full = load("study_short_1slot"), load("study_full_8slots")
if full:
    ratio = f", {full['ratio_to_report']:.1f}x faster than the report's 2,300 s" if full["ratio_to_report"] else ""
    print(f"study, full MNIST table, 8 slots: {full['wall_seconds']:.1f} s wall{ratio}")
else:
    print("study, full MNIST table, 8 slots: did not finish within the budget (see study_full_8slots.txt)")
if one and full:
    def rate(figures):
        return figures["runs"] * figures["epochs"] / figures["wall_seconds"]
    print(f"run-epochs per second: 1 slot (6 x 1 epoch) {rate(one):.2f}, 8 slots (18 x 10) {rate(full):.2f}: "
          f"{rate(full) / rate(one):.2f}x")
PY
echo "gpu_check: $(( SECONDS - started )) s; results in $out"
exit $graphs_rc
