"""The run form as the spec grew: each architecture's own fields, fine-tuning groups that follow the chosen
architecture, schedules, augmentation and early stopping; a clone of a fine-tuning run round-trips; the run
page shows what the worker prepared."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.backend.web.test_forms import SPECS as FORM_SPECS
from trainboard.spec import FINETUNE_ARCHS, MODEL_GROUPS

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.conftest import LiveServer
    from tests.frontend.conftest import Worker

    MakeWorker = Callable[[int], Worker]

pytestmark = pytest.mark.browser

FINETUNE = {
    "name": "r18-fc-layer4",
    "dataset": {"name": "cifar10", "normalize": "computed", "resize": 64, "train_limit": 1000},
    "augment": {
        "random_crop": {"size": 64, "padding": 4},
        "hflip": {"p": 0.5},
        "color_jitter": {"brightness": 0.3, "contrast": 0.1, "saturation": 0.2, "hue": 0.05},
    },
    "model": {"arch": "resnet18", "pretrained": True, "head": {"kind": "mlp", "hidden": 128, "dropout": 0.3}},
    "finetune": {"train": ["fc", "layer4"], "lr": {"fc": 0.01, "layer4": 1e-05}, "frozen_bn_eval": True},
    "optimizer": {"name": "sgd", "lr": 0.001, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0005},
    "scheduler": {"name": "multistep", "milestones": [5, 10], "gamma": 0.5},
    "early_stopping": {"metric": "test_loss", "patience": 4, "min_delta": 0.001, "restore_best": False},
    "epochs": 15,
    "batch_size": 32,
    "seed": 7,
    "device": "cpu",
}


def groups_shown(page: Page) -> list[str]:
    return page.locator("fieldset.groups:visible code").all_inner_texts()


def test_each_architecture_shows_its_own_fields_and_fine_tuning_groups(page: Page, screenshots: Path) -> None:
    page.goto("/runs/new")
    arch = page.get_by_label("Architecture")
    expect(arch.locator("option")).to_have_text(
        [
            "MLP (fully connected)",
            "CNN (convolutional)",
            "Custom CNN (conv blocks with batch norm)",
            "ResNet18 (torchvision)",
            "VGG16 (torchvision)",
            "AlexNet (torchvision)",
        ]
    )
    expect(page.get_by_label("Conv channels")).to_be_visible()
    expect(page.get_by_label("Block widths")).to_be_hidden()
    expect(page.get_by_label("Start from the ImageNet weights (pretrained)")).to_be_hidden()
    # Fine-tuning only for the models whose groups are worth choosing (the torchvision ones).
    expect(page.locator("#finetune-fields")).to_be_hidden()
    expect(page.get_by_label("Train every parameter")).to_be_disabled()  # not posted: the spec's default, train all
    assert groups_shown(page) == []

    arch.select_option("resnet18")
    expect(page.locator("#finetune-fields")).to_be_visible()
    expect(page.get_by_label("Start from the ImageNet weights (pretrained)")).to_be_visible()
    for hidden in ("Conv channels", "Hidden layers", "Block widths"):
        expect(page.get_by_label(hidden)).to_be_hidden()
        expect(page.get_by_label(hidden)).to_be_disabled()  # disabled: not posted
    expect(page.get_by_label("Head width")).to_be_hidden()
    page.get_by_label("Head", exact=True).select_option("mlp")
    expect(page.get_by_label("Head width")).to_be_visible()
    assert groups_shown(page) == MODEL_GROUPS["resnet18"]
    expect(page.get_by_label("fc lr")).to_be_enabled()  # every group trains: any may get its own lr
    expect(page.get_by_label("layer4", exact=True)).to_be_disabled()
    page.get_by_label("Train only the groups checked below").check()
    expect(page.get_by_label("fc lr")).to_be_disabled()  # not trained: no lr of its own
    page.get_by_label("fc", exact=True).check()
    page.get_by_label("layer4", exact=True).check()
    expect(page.get_by_label("fc lr")).to_be_enabled()
    expect(page.get_by_label("layer4 lr")).to_be_enabled()
    expect(page.get_by_label("layer1 lr")).to_be_disabled()
    expect(page.locator("#f-finetune-train_order")).to_have_value("fc, layer4")
    page.screenshot(path=screenshots / "run-form-resnet18.png", full_page=True, animations="disabled")

    arch.select_option("vgg16")
    assert groups_shown(page) == MODEL_GROUPS["vgg16"]
    arch.select_option("custom_cnn")
    expect(page.get_by_label("Block widths")).to_be_visible()
    expect(page.get_by_label("Hidden layers")).to_have_value("128")  # the custom CNN's own defaults
    expect(page.get_by_label("Dropout", exact=True)).to_have_value("0.25")
    expect(page.locator("#finetune-fields")).to_be_visible()  # "train only some groups" was chosen: it stays in view
    assert groups_shown(page) == MODEL_GROUPS["custom_cnn"]
    page.get_by_label("Train every parameter").check()
    expect(page.locator("#finetune-fields")).to_be_hidden()  # a small model trains whole
    arch.select_option("mlp")
    expect(page.get_by_label("Dropout", exact=True)).to_have_value("0.0")
    expect(page.get_by_label("Batch norm after each hidden layer")).to_be_visible()
    page.get_by_label("Dropout", exact=True).fill("0.2")
    arch.select_option("custom_cnn")
    expect(page.get_by_label("Dropout", exact=True)).to_have_value("0.2")  # an edited value stays

    schedule = page.get_by_label("Schedule", exact=True)
    expect(page.get_by_label("Milestones")).to_be_hidden()
    schedule.select_option("multistep")
    expect(page.get_by_label("Milestones")).to_be_visible()
    expect(page.get_by_label("Gamma")).to_be_visible()
    schedule.select_option("cosine")
    expect(page.get_by_label("Gamma")).to_be_hidden()
    expect(page.get_by_label("Cosine period (t_max)")).to_be_visible()
    expect(page.get_by_label("Patience")).to_be_hidden()
    page.get_by_label("Stop when the test metric stops improving").check()
    expect(page.get_by_label("Patience")).to_be_visible()
    expect(page.get_by_label("Crop padding")).to_be_hidden()
    page.get_by_label("Random crop").check()
    expect(page.get_by_label("Crop padding")).to_have_value("4")
    page.get_by_label("Optimizer").select_option("adam")
    expect(page.get_by_label("Momentum", exact=True)).to_be_hidden()


def test_a_fine_tuning_run_from_the_form_and_its_errors(page: Page, api: httpx.Client) -> None:
    page.goto("/runs/new")
    page.get_by_label("Dataset", exact=True).select_option("cifar10")
    page.get_by_label("Architecture").select_option("resnet18")
    page.get_by_label("Train only the groups checked below").check()
    page.get_by_role("button", name="Queue run").click()  # no group checked
    expect(page.locator("#error-finetune-train")).to_have_text("name at least one group to train (or `all`)")
    expect(page.get_by_label("Architecture")).to_have_value("resnet18")
    expect(page.get_by_label("Train only the groups checked below")).to_be_checked()

    page.get_by_label("layer4", exact=True).check()
    page.get_by_label("fc", exact=True).check()
    page.get_by_label("layer4 lr").fill("0")
    page.get_by_role("button", name="Queue run").click()
    expect(page.get_by_label("layer4 lr")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#form-errors")).to_contain_text("The run was not queued.")
    page.get_by_label("layer4 lr").fill("0.0001")
    page.get_by_label("fc lr").fill("0.01")
    page.get_by_role("button", name="Queue run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    spec = api.get(f"/api/runs/{page.url.rsplit('/', 1)[1]}").json()["spec"]
    assert spec["finetune"] == {
        "train": ["layer4", "fc"],
        "lr": {"layer4": 0.0001, "fc": 0.01},
        "frozen_bn_eval": False,
    }  # checked in that order
    assert spec["model"] == {
        "arch": "resnet18",
        "pretrained": False,
        "head": {"kind": "linear", "hidden": 256, "dropout": 0.5},
    }
    expect(page.locator("table.spec")).to_contain_text("finetune.lr.layer4")


def test_errors_are_in_the_users_words_and_an_empty_number_field_shows_and_takes_its_default(
    page: Page, api: httpx.Client
) -> None:
    page.goto("/runs/new")
    expect(page.locator("#empty-fields")).to_contain_text("left empty takes its default")
    epochs = page.get_by_label("Epochs")
    epochs.fill("ten")
    page.get_by_label("Learning rate").fill("0.01.0")
    page.get_by_role("button", name="Queue run").click()
    expect(epochs).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-epochs-error")).to_have_text("must be a whole number, like 10")
    expect(page.locator("#f-optimizer-lr-error")).to_have_text("must be a number, like 0.01")
    expect(page.locator("#form-errors")).to_contain_text("Fix the 2 fields marked below.")

    epochs.fill("")
    expect(epochs).to_have_attribute("placeholder", "10")  # what an empty box takes, shown in it
    page.get_by_label("Learning rate").fill("0.05")
    page.get_by_role("button", name="Queue run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    spec = api.get(f"/api/runs/{page.url.rsplit('/', 1)[1]}").json()["spec"]
    assert (spec["epochs"], spec["optimizer"]["lr"]) == (10, 0.05)


def test_clone_round_trips_a_resnet18_fine_tuning_spec(page: Page, api: httpx.Client, screenshots: Path) -> None:
    response = api.post("/api/runs", json=FINETUNE)
    assert response.status_code == 201, response.text
    source: dict[str, Any] = response.json()
    page.goto(f"/runs/{source['id']}")
    page.get_by_role("link", name="Clone").click()
    expect(page.get_by_label("Architecture")).to_have_value("resnet18")
    expect(page.get_by_label("Start from the ImageNet weights (pretrained)")).to_be_checked()
    expect(page.get_by_label("Head", exact=True)).to_have_value("mlp")
    expect(page.get_by_label("Head width")).to_have_value("128")
    expect(page.get_by_label("Train only the groups checked below")).to_be_checked()
    expect(page.get_by_label("fc", exact=True)).to_be_checked()
    expect(page.get_by_label("layer1", exact=True)).not_to_be_checked()
    expect(page.get_by_label("layer4 lr")).to_have_value("1e-05")
    expect(page.get_by_label("Colour jitter")).to_be_checked()
    expect(page.get_by_label("Hue")).to_have_value("0.05")
    expect(page.get_by_label("Random rotation")).not_to_be_checked()
    expect(page.get_by_label("Nesterov momentum")).to_be_checked()
    expect(page.get_by_label("Milestones")).to_have_value("5, 10")
    expect(page.get_by_label("Metric", exact=True)).to_have_value("test_loss")
    expect(page.get_by_label("End with the best epoch's weights")).not_to_be_checked()
    expect(page.get_by_label("Normalisation")).to_have_value("computed")
    page.screenshot(path=screenshots / "run-form-clone-finetune.png", full_page=True, animations="disabled")
    page.get_by_role("button", name="Queue run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    clone = api.get(f"/api/runs/{page.url.rsplit('/', 1)[1]}").json()
    assert clone["id"] != source["id"]
    assert clone["spec"] == source["spec"]
    assert clone["spec"]["finetune"]["train"] == ["fc", "layer4"]  # the order of the optimizer's param groups


def test_the_run_page_shows_what_the_worker_prepared(page: Page, api: httpx.Client, worker: MakeWorker) -> None:
    run_id = api.post("/api/runs", json=FINETUNE).json()["id"]
    trainer = worker(run_id)
    trainer.claim()
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#info-pending")).to_be_visible()
    expect(page.locator("table.spec")).to_contain_text("augment.color_jitter.hue")
    expect(page.locator("table.spec tr", has_text="augment.rotation")).to_contain_text("off")
    info = {
        "train_images": 1000,
        "test_images": 10000,
        "image_size": [3, 64, 64],
        "mean": [0.49139, 0.48215, 0.44653],
        "std": [0.24703, 0.24349, 0.26159],
        "normalize": "computed",
        "parameters": 11_243_466,
        "trainable_parameters": 8_460_426,
        "lr_groups": ["fc", "layer4"],
        "device": "cpu",
    }
    assert (
        trainer.client.post(
            "/info", json={"attempt": trainer.attempt, "lease": trainer.lease, "info": info}
        ).status_code
        == 200
    )
    expect(page.locator('[data-field="info-size"]')).to_have_text("3×64×64 (channels × height × width)")
    expect(page.locator('[data-field="info-mean"]')).to_have_text("0.4914, 0.4822, 0.4465")
    expect(page.locator('[data-field="info-std"]')).to_have_text("0.2470, 0.2435, 0.2616")
    expect(page.locator('[data-field="info-trainable"]')).to_have_text("8,460,426")
    expect(page.locator('[data-field="info-lr-groups"]')).to_have_text("fc, layer4")
    expect(page.locator("#info-pending")).to_be_hidden()
    live = page.locator("#info-list").inner_text()
    page.reload()
    assert page.locator("#info-list").inner_text() == live
    expect(page.locator("#run-study")).to_have_count(0)  # not in a study


# Each conditional part: its condition, whether it is disabled (not posted) and whether it is hidden (a fieldset).
STATE = (
    "() => [...document.querySelectorAll('#run-form [data-when]')]"
    ".map((e) => `${e.dataset.when} ${e.disabled} ${e.tagName === 'FIELDSET' ? e.hidden : ''}`)"
)


@pytest.mark.parametrize("name", sorted(FORM_SPECS))
def test_the_servers_initial_form_state_is_what_form_js_computes(
    name: str, page: Page, api: httpx.Client, browser: Browser, live_server: LiveServer
) -> None:
    """run_form.html's is_on and form.js's applies decide the same parts (the server renders the first
    state, the script every later one): for each kind of spec, the page without script equals it with."""
    run = api.post("/api/runs", json=FORM_SPECS[name] | {"device": "cpu", "epochs": 1})
    assert run.status_code == 201, run.text
    page.goto(f"/runs/new?clone={run.json()['id']}")
    with_script = page.evaluate(STATE)
    plain = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    plain.add_cookies(page.context.cookies())
    try:
        static = plain.new_page()
        static.goto(f"/runs/new?clone={run.json()['id']}")
        assert static.evaluate(STATE) == with_script
        # The fine-tuning section: shown for a torchvision model, or a clone that trains only some groups.
        finetune = static.locator("#finetune-fields")
        shown = FORM_SPECS[name]["model"]["arch"] in FINETUNE_ARCHS or "train" in FORM_SPECS[name].get("finetune", {})
        assert finetune.is_hidden() is not shown
    finally:
        plain.close()
