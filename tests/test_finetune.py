"""Fine-tuning strategies on a real timm backbone: which layers train, what BatchNorm does, layer-wise LR decay."""

from __future__ import annotations

import pytest
import timm
import torch

from landmark_lib.train.finetune import set_frozen_bn_eval, trainable_groups
from landmark_lib.train.optim import build_optimizer, cosine_with_warmup


@pytest.fixture()
def lite0() -> torch.nn.Module:
    return timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=5)


def trained_names(model: torch.nn.Module) -> set[str]:
    return {
        name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("blocks.") else "")
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def test_linear_partial_full_train_the_layers_they_name(lite0):
    trainable_groups(lite0, "linear", 1)
    assert trained_names(lite0) == {"classifier"}
    trainable_groups(lite0, "partial", 1)
    assert trained_names(lite0) == {"blocks.6", "conv_head", "bn2", "classifier"}  # last stage incl. the head conv
    trainable_groups(lite0, "partial", 2)
    assert trained_names(lite0) == {"blocks.5", "blocks.6", "conv_head", "bn2", "classifier"}
    trainable_groups(lite0, "full", 1)
    assert all(p.requires_grad for p in lite0.parameters())
    with pytest.raises(ValueError, match="--train-stages must be between 1 and 7"):
        trainable_groups(lite0, "partial", 8)


def test_frozen_batchnorm_keeps_its_statistics_while_trained_batchnorm_learns(lite0):
    trainable_groups(lite0, "partial", 1)
    lite0.train()
    set_frozen_bn_eval(lite0)
    frozen_bn, trained_bn = lite0.blocks[0][0].bn1, lite0.bn2
    before = frozen_bn.running_mean.clone(), trained_bn.running_mean.clone()
    lite0(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert torch.equal(frozen_bn.running_mean, before[0]) and not frozen_bn.training
    assert not torch.equal(trained_bn.running_mean, before[1]) and trained_bn.training
    set_frozen_bn_eval(lite0, freeze_all_bn=True)  # --freeze-bn: the trained layers' BatchNorm too
    assert not trained_bn.training


def test_layer_decay_gives_earlier_layers_smaller_learning_rates_through_the_schedule(lite0):
    optimizer = build_optimizer(lite0, "adamw", 1e-3, 0.05, layer_decay=0.5)
    scheduler = cosine_with_warmup(optimizer, warmup_steps=0, total_steps=10)
    ids = {id(p): name for name, p in lite0.named_parameters()}

    def lr_of(prefix: str) -> float:
        return next(g["lr"] for g in optimizer.param_groups if any(ids[id(p)].startswith(prefix) for p in g["params"]))

    assert lr_of("classifier") == pytest.approx(1e-3)
    assert lr_of("blocks.6") == pytest.approx(0.5e-3)
    assert lr_of("conv_stem") < lr_of("blocks.3") < lr_of("blocks.6") < lr_of("classifier")
    ratio = lr_of("conv_stem") / lr_of("classifier")
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert lr_of("classifier") < 1e-3  # the schedule moves every group, keeping the decay between them
    assert lr_of("conv_stem") / lr_of("classifier") == pytest.approx(ratio)

    flat = build_optimizer(lite0, "adamw", 1e-3, 0.05)
    assert {g["lr"] for g in flat.param_groups} == {1e-3}
