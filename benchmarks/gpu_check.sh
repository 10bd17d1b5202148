#!/usr/bin/env bash
# One call on a lent GPU machine: a CUDA correctness check of the engine, benchmarks/engine.py, then
# benchmarks/engine_features.py (augmentation, torchvision models, fine-tuning, resize 224 through fit on CUDA).
# Run from the repo root there, with .whl/ carried (pydantic wheels: the GPU image lacks pydantic).
# Writes logs and JSON under $OUT (or ./gpu-out when OUT is unset).
set -uo pipefail
out="${OUT:-gpu-out}"; mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 - <<'PY' 2>&1 | tee "$out/cuda_check.txt"
import torch
from pathlib import Path
from trainboard.spec import RunSpec
from worker.engine import fit
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
for model in ({"arch": "mlp", "hidden": [256, 128], "batch_norm": True},
              {"arch": "cnn", "channels": [32, 64], "kernel_sizes": [3, 3], "pool": "max", "hidden": [128]}):
    spec = RunSpec.model_validate({"dataset": {"name": "digits"}, "model": model, "epochs": 3, "device": "cuda",
                                   "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}})
    records = []
    result = fit(spec, data_dir=Path("/tmp/tb-data"), report=records.append)
    diag = sum(result.confusion[i][i] for i in range(10)) / sum(map(sum, result.confusion))
    print(model["arch"], result.device, [round(r.test_acc, 4) for r in records], "confusion acc", round(diag, 4))
    assert result.device.startswith("cuda") and records[-1].test_acc > 0.8
    assert abs(diag - records[-1].test_acc) < 1e-9
print("CUDA CHECK OK")
PY
python3 benchmarks/engine.py --device cuda --dataset mnist --arch mlp cnn --epochs 5 --json "$out/bench_mnist.json" 2>&1 | tee "$out/bench_mnist.txt"
python3 benchmarks/engine.py --device cuda --dataset cifar10 --arch cnn --batch-size 512 --epochs 5 --json "$out/bench_cifar.json" 2>&1 | tee "$out/bench_cifar.txt"
python3 benchmarks/engine_features.py --device cuda --train-size 25000 --test-size 5000 --epochs 2 --json "$out/features.json" 2>&1 | tee "$out/features.txt"
