#!/usr/bin/env bash
# The engine's GPU checks of earlier issues (this was gpu_check.sh, which now checks CUDA graphs and a study):
# a CUDA correctness check of the engine, benchmarks/engine.py, then benchmarks/engine_features.py
# (augmentation, torchvision models, fine-tuning, resize 224 through fit on CUDA).
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
    result = fit(spec, data_dir=Path("/tmp/tb-data"), on_epoch=records.append)
    diag = sum(result.confusion[i][i] for i in range(10)) / sum(map(sum, result.confusion))
    print(model["arch"], result.device, [round(r.test_acc, 4) for r in records], "confusion acc", round(diag, 4))
    assert result.device.startswith("cuda") and records[-1].test_acc > 0.8
    assert abs(diag - records[-1].test_acc) < 1e-9
    # Issue 11's per-epoch figures on a GPU: peaks and (with NVML) utilisation.
    system = records[-1].system
    print("system", system)
    assert system is not None and system.gpu_allocated_bytes and system.gpu_reserved_bytes
print("CUDA CHECK OK")

# A CUDA run's checkpoint resumes (on this or another GPU): same epochs, close metrics (CUDA is not bit-exact).
import tempfile
from dataclasses import dataclass, field
@dataclass
class Files:
    folder: Path
    kept: dict = field(default_factory=dict)
    def checkpoint(self, path, epoch):
        self.kept[epoch] = path.rename(path.with_name(f"kept-{epoch}.safetensors"))
    def weights(self, path, epoch):
        pass
spec = RunSpec.model_validate({"dataset": {"name": "digits"}, "model": {"arch": "custom_cnn", "blocks": [16, 32]},
                               "augment": {"hflip": {"p": 0.5}}, "epochs": 4, "device": "cuda",
                               "checkpoint": {"min_seconds": 0}, "scheduler": {"name": "step", "step_size": 1}})
files = Files(Path(tempfile.mkdtemp()))
whole = []
fit(spec, data_dir=Path("/tmp/tb-data"), on_epoch=whole.append, files=files)
resumed = []
fit(spec, data_dir=Path("/tmp/tb-data"), on_epoch=resumed.append, resume_from=files.kept[2])
print("resume on cuda", [round(r.test_acc, 4) for r in whole], [round(r.test_acc, 4) for r in resumed])
assert [r.epoch for r in resumed] == [3, 4] and [r.lr for r in resumed] == [r.lr for r in whole[2:]]
assert all(abs(a.test_acc - b.test_acc) < 0.05 for a, b in zip(resumed, whole[2:]))
print("CUDA RESUME OK")
PY
python3 benchmarks/checkpoints.py --out "$out/checkpoints_cpu.json" 2>&1 | tee "$out/checkpoints.txt"
python3 benchmarks/engine.py --device cuda --dataset mnist --arch mlp cnn --epochs 5 --json "$out/bench_mnist.json" 2>&1 | tee "$out/bench_mnist.txt"
python3 benchmarks/engine.py --device cuda --dataset cifar10 --arch cnn --batch-size 512 --epochs 5 --json "$out/bench_cifar.json" 2>&1 | tee "$out/bench_cifar.txt"
python3 benchmarks/engine_features.py --device cuda --train-size 25000 --test-size 5000 --epochs 2 --json "$out/features.json" 2>&1 | tee "$out/features.txt"
