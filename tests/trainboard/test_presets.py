"""The built-in presets and the variant expansion they use: every preset loads, validates and expands to
exactly the runs of its table (labels and reported figures as in the study), with or without a global
override; a broken preset file is an error naming the file; dotted paths set what they say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainboard.presets import Preset, PresetError, load_presets_from, presets
from trainboard.presets.variants import PathError, StudyInvalid, Variant, expand, set_path
from trainboard.spec import MLPSpec, MultiStepSchedule, TorchvisionSpec

# The "Version" column of each table of the study, in order.
LABELS = {
    "mnist-ablations": [
        "Basic FC",
        "Norm",
        "Larger FC",
        "Larger Norm",
        "Deeper Norm",
        "Basic CNN",
        "Stride CNN",
        "CNN kernel=5",
        "CNN different kernels",
        "AvgPool CNN",
        "Dilation CNN",
        "Base CNN lr=0.0001",
        "Base CNN lr=0.1",
        "Base CNN momentum",
        "Base CNN Adam",
        "Scheduler",
        "Batch 32",
        "Batch 128",
    ],
    "cifar10-models": [
        "CNN baseline",
        "Baseline MultiStep",
        "Baseline CosineAnnealing",
        "ResNet18",
        "ResNet18 FineTuned",
        "Aug: Baseline CosineAnnealing",
        "Aug: FC CosineAnnealing",
        "Aug: Custom CNN",
        "Aug: ResNet18 Pretrained",
        "Aug: VGG16 Pretrained",
        "Aug: AlexNet Pretrained",
        "Aug+: Baseline ColorJitter+Rotation",
    ],
    "resnet18-finetune": [
        "No Fine Tuning",
        "FC",
        "FC modified",
        "FC + L4",
        "FC + L2",
        "FC + L1",
        "R224 No Fine Tuning",
        "R224 FC",
        "R224 FC modified",
        "R224 FC + L4",
        "R224 FC + L4 on SGD",
        "R224 FC + L4 Lower LR",
        "R224 FC + L4 Bigger LR",
        "R224 FC + L2",
        "R224 FC + L1",
        # early stopping on the best three (the study gives these no label of their own)
        "R224 No Fine Tuning + early stopping",
        "R224 FC modified + early stopping",
        "R224 FC + L4 + early stopping",
    ],
}
SMOKE = {"epochs": 1, "dataset.train_limit": 512, "dataset.test_limit": 256}


def specs_of(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    preset = presets()[name]
    return {v.label: s for v, s in zip(preset.variants, expand(preset.base, preset.variants, overrides), strict=True)}


@pytest.mark.parametrize("name", list(LABELS))
@pytest.mark.parametrize("overrides", [None, SMOKE], ids=["as-is", "smoke-override"])
def test_each_preset_expands_to_its_tables_runs(name: str, overrides: dict[str, Any] | None) -> None:
    preset = presets()[name]
    specs = expand(preset.base, preset.variants, overrides)
    assert [v.label for v in preset.variants] == LABELS[name]
    assert len(specs) == len(LABELS[name])  # 18, 12 and 18 runs
    assert [s.name for s in specs] == LABELS[name]
    if overrides:
        assert {(s.epochs, s.dataset.train_limit, s.dataset.test_limit) for s in specs} == {(1, 512, 256)}
    assert preset.description and preset.title and preset.table


def test_presets_come_in_the_order_of_the_tables() -> None:
    assert list(presets()) == ["mnist-ablations", "cifar10-models", "resnet18-finetune"]


def test_mnist_ablations_settings() -> None:
    specs = specs_of("mnist-ablations")
    batch_sizes = {label: s.batch_size for label, s in specs.items()}
    assert {s.epochs for s in specs.values()} == {10}
    assert {size for label, size in batch_sizes.items() if not label.startswith("Batch ")} == {64}
    assert (specs["Batch 32"].batch_size, specs["Batch 128"].batch_size) == (32, 128)
    assert {s.dataset.name for s in specs.values()} == {"mnist"}
    fc = {label: s.model for label, s in specs.items() if isinstance(s.model, MLPSpec)}
    assert list(fc) == ["Basic FC", "Norm", "Larger FC", "Larger Norm", "Deeper Norm"]
    assert [m.batch_norm for m in fc.values()] == [False, True, False, True, True]
    assert sum(fc["Deeper Norm"].hidden) == sum(fc["Larger Norm"].hidden) and len(fc["Deeper Norm"].hidden) > 2
    cnn = specs["Basic CNN"].model
    assert (cnn.arch, cnn.kernel_sizes, cnn.pool, cnn.dilation) == ("cnn", [3, 3], "max", 1)
    assert specs["Stride CNN"].model.pool == "stride" and specs["AvgPool CNN"].model.pool == "avg"
    assert specs["CNN kernel=5"].model.kernel_sizes == [5, 5]
    assert specs["CNN different kernels"].model.kernel_sizes == [3, 9]
    assert specs["Dilation CNN"].model.dilation == 2
    lrs = {label: (s.optimizer.name, s.optimizer.lr, s.optimizer.momentum) for label, s in specs.items()}
    assert lrs["Basic CNN"] == ("sgd", 0.01, 0.0)
    assert lrs["Base CNN lr=0.0001"] == ("sgd", 0.0001, 0.0) and lrs["Base CNN lr=0.1"] == ("sgd", 0.1, 0.0)
    assert lrs["Base CNN momentum"] == ("sgd", 0.01, 0.9) and lrs["Base CNN Adam"] == ("adam", 0.0001, 0.0)
    schedule = specs["Scheduler"].scheduler
    assert isinstance(schedule, MultiStepSchedule) and schedule.milestones == [2, 5, 7]
    assert {s.scheduler.name for label, s in specs.items() if label != "Scheduler"} == {"none"}


def test_cifar10_models_settings() -> None:
    specs = specs_of("cifar10-models")
    for spec in specs.values():
        assert (spec.epochs, spec.batch_size, spec.dataset.normalize) == (20, 64, "computed")
        assert (spec.optimizer.name, spec.optimizer.lr, spec.optimizer.momentum, spec.optimizer.weight_decay) == (
            "sgd",
            0.01,
            0.9,
            0.0001,
        )
    augmented = [label for label, s in specs.items() if s.augment.random_crop is not None]
    assert augmented == [label for label in LABELS["cifar10-models"] if label.startswith("Aug")]
    for label in augmented:
        augment = specs[label].augment
        # size None: crop to the image size, whatever a resize override makes it (32 here)
        assert (augment.random_crop.size, augment.random_crop.padding, augment.hflip.p) == (None, 4, 0.5)
        assert specs[label].scheduler.name == "cosine"
    heavy = specs["Aug+: Baseline ColorJitter+Rotation"].augment
    assert heavy.color_jitter is not None and heavy.rotation is not None
    assert specs["Aug: FC CosineAnnealing"].model.arch == "mlp"
    assert len(specs["Aug: FC CosineAnnealing"].model.hidden) + 1 == 10  # 10 linear layers
    assert specs["Aug: FC CosineAnnealing"].model.batch_norm
    custom = specs["Aug: Custom CNN"].model
    assert custom.arch == "custom_cnn" and len(custom.blocks) == 2
    pretrained = {
        label: s.model.arch for label, s in specs.items() if isinstance(s.model, TorchvisionSpec) and s.model.pretrained
    }
    assert pretrained == {
        "ResNet18 FineTuned": "resnet18",
        "Aug: ResNet18 Pretrained": "resnet18",
        "Aug: VGG16 Pretrained": "vgg16",
        "Aug: AlexNet Pretrained": "alexnet",
    }
    scratch = specs["ResNet18"].model
    assert isinstance(scratch, TorchvisionSpec) and not scratch.pretrained
    assert specs["ResNet18 FineTuned"].finetune.train == "all"
    assert specs["Baseline MultiStep"].scheduler.name == "multistep"


def test_resnet18_finetune_settings() -> None:
    specs = specs_of("resnet18-finetune")
    for label, spec in specs.items():
        assert isinstance(spec.model, TorchvisionSpec) and spec.model.arch == "resnet18" and spec.model.pretrained
        assert spec.batch_size == 64 and spec.augment.hflip.p == 0.5 and spec.augment.random_crop.padding == 4
        resized = label.startswith("R224")
        assert spec.dataset.resize == (224 if resized else None)
        assert spec.augment.random_crop.size is None  # the image size: 224 when resized, else 32
        assert spec.dataset.image_size == ((224, 224) if resized else (32, 32))
        # Only the full network (no schedule) gets more room; the cosine ones keep the schedule they compare with.
        assert spec.epochs == (30 if label == "R224 No Fine Tuning + early stopping" else 15)
        assert (spec.early_stopping is not None) == ("early stopping" in label)
    trained = {label: spec.finetune.train for label, spec in specs.items()}
    assert trained["No Fine Tuning"] == trained["R224 No Fine Tuning"] == "all"
    assert trained["FC"] == trained["FC modified"] == ["fc"]
    assert trained["FC + L4"] == ["fc", "layer4"] and trained["FC + L1"] == ["fc", "layer1"]
    assert specs["FC + L4"].finetune.lr == {"fc": 0.01, "layer4": 0.0001}
    assert specs["FC + L2"].finetune.lr == {"fc": 0.01, "layer2": 0.0001}
    assert specs["R224 FC + L4 Lower LR"].finetune.lr == {"fc": 0.001, "layer4": 0.00001}
    assert specs["R224 FC + L4 Bigger LR"].finetune.lr == {"fc": 0.1, "layer4": 0.001}
    assert specs["R224 FC + L4 on SGD"].optimizer.name == "sgd" and specs["R224 FC + L4"].optimizer.name == "adam"
    modified = specs["FC modified"]
    assert (modified.model.head.kind, modified.optimizer.name, modified.optimizer.lr, modified.scheduler.name) == (
        "mlp",
        "adam",
        0.0001,
        "cosine",
    )
    assert specs["FC"].model.head.kind == "linear" and specs["No Fine Tuning"].optimizer.name == "sgd"
    stop = specs["R224 FC + L4 + early stopping"].early_stopping
    assert stop is not None and (stop.metric, stop.restore_best) == ("test_acc", True)


def test_reported_figures_are_the_studys() -> None:
    reported = {name: {v.label: v.reported for v in p.variants} for name, p in presets().items()}
    mnist = reported["mnist-ablations"]
    assert (mnist["Basic FC"].test_acc, mnist["Basic FC"].seconds) == (0.96, 115.84)
    assert (mnist["Base CNN lr=0.0001"].test_acc, mnist["Batch 128"].seconds) == (0.89, 126.62)
    cifar = reported["cifar10-models"]
    assert (cifar["Aug: Custom CNN"].test_acc, cifar["Aug: Custom CNN"].seconds) == (0.85, 1650.51)
    finetune = reported["resnet18-finetune"]
    assert (finetune["FC"].test_acc, finetune["R224 FC modified"].seconds) == (0.42, 2257.74)
    assert finetune["R224 FC + L4 + early stopping"].seconds is None  # the report gives no time for these
    assert all(r is not None and r.test_acc is not None for table in reported.values() for r in table.values())


# --- loading preset files ------------------------------------------------------------------------------


def write_preset(folder: Path, stem: str, /, **changes: Any) -> Path:
    body = {
        "name": stem,
        "title": "A test preset",
        "table": "Table 9",
        "base": {"dataset": {"name": "digits"}, "model": {"arch": "mlp"}},
        "variants": [{"label": "a"}, {"label": "b", "set": {"epochs": 2}}],
    } | changes
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(body))
    return path


def test_a_folder_of_presets_loads(tmp_path: Path) -> None:
    write_preset(tmp_path, "good")
    (tmp_path / "README.txt").write_text("not a preset")
    loaded = load_presets_from(tmp_path)
    assert list(loaded) == ["good"] and isinstance(loaded["good"], Preset)
    assert [v.label for v in loaded["good"].variants] == ["a", "b"]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"variants": [{"label": "a", "set": {"epochs": 0}}]}, "variant 0 (a): epochs: Input should be greater"),
        ({"variants": [{"label": "a", "set": {"model.arch.x": 1}}]}, "model.arch is a string"),
        ({"variants": [{"label": "a"}, {"label": "a"}]}, "label 'a' is used by variants 0 and 1"),
        ({"variants": [{"label": "a", "reported": {"test_acc": 96}}]}, "less than or equal to 1"),
        ({"name": "other"}, "its name is 'other'; the file must be other.json"),
        ({"title": ""}, "title"),
    ],
)
def test_a_bad_preset_file_is_an_error_naming_it(tmp_path: Path, changes: dict[str, Any], words: str) -> None:
    write_preset(tmp_path, "fine")
    write_preset(tmp_path, "broken", **changes)
    with pytest.raises(PresetError, match=r"preset file broken\.json: ") as caught:
        load_presets_from(tmp_path)
    assert words in str(caught.value)


def test_a_preset_file_that_is_not_json_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "garbled.json").write_text("{not json")
    with pytest.raises(PresetError, match=r"(?s)preset file garbled.json: .*Invalid JSON"):
        load_presets_from(tmp_path)


def test_the_app_does_not_start_with_a_broken_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    import trainboard.presets
    from backend.app import create_app
    from tests.conftest import make_settings

    folder = tmp_path / "presets"
    folder.mkdir()
    write_preset(folder, "broken", variants=[{"label": "a", "set": {"model.arch": "transformer"}}])
    monkeypatch.setattr(trainboard.presets, "presets", lambda: load_presets_from(folder))
    monkeypatch.setattr("backend.app.load_presets", trainboard.presets.presets)
    with pytest.raises(PresetError, match=r"preset file broken\.json: variant 0 \(a\): model"):
        with TestClient(create_app(make_settings(tmp_path))):
            pass


# --- dotted paths ---------------------------------------------------------------------------------------


def test_set_path_sets_nested_keys_creating_missing_and_null_objects() -> None:
    spec: dict[str, Any] = {"model": {"arch": "cnn", "channels": [8]}, "early_stopping": None}
    set_path(spec, "model.kernel_sizes", [5])
    set_path(spec, "early_stopping.patience", 4)
    set_path(spec, "augment.random_crop.padding", 2)
    value = [1, 2]
    set_path(spec, "model.hidden", value)
    value.append(3)  # the spec holds a copy
    assert spec == {
        "model": {"arch": "cnn", "channels": [8], "kernel_sizes": [5], "hidden": [1, 2]},
        "early_stopping": {"patience": 4},
        "augment": {"random_crop": {"padding": 2}},
    }
    set_path(spec, "model", {"arch": "mlp"})
    assert spec["model"] == {"arch": "mlp"}


@pytest.mark.parametrize("path", ["", "model.", ".model", "model..x", "model.kernel-sizes", "a.b.c.d.e.f.g.h.i", "0x"])
def test_set_path_refuses_what_is_not_a_dotted_path(path: str) -> None:
    with pytest.raises(PathError, match="is not a dotted spec path"):
        set_path({}, path, 1)


def test_set_path_refuses_to_go_through_a_value() -> None:
    with pytest.raises(PathError, match=r"^model.arch is a string \('cnn'\), not an object: cannot set model.arch.x$"):
        set_path({"model": {"arch": "cnn"}}, "model.arch.x", 1)
    with pytest.raises(PathError, match=r"^dataset.normalize is a boolean \(true\)"):
        set_path({"dataset": {"normalize": True}}, "dataset.normalize.x", 1)


def test_expand_needs_a_base_or_a_whole_spec() -> None:
    with pytest.raises(StudyInvalid) as caught:
        expand(
            None,
            [Variant(label="a"), Variant(label="b", spec={"dataset": {"name": "digits"}, "model": {"arch": "mlp"}})],
        )
    [error] = caught.value.errors
    assert (error.variant, error.label, error.field) == (0, "a", "base")
    assert str(caught.value) == "variant 0 (a): base: the study has no base spec and this variant gives no whole spec"


def test_presets_accept_a_resize_override_for_a_quick_smoke_test() -> None:
    for name in ("cifar10-models", "resnet18-finetune"):
        specs = specs_of(name, {"dataset.resize": 48, "epochs": 1})
        assert {s.dataset.image_size for s in specs.values()} == {(48, 48)}
