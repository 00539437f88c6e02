"""TrainConfig is the one home of `landmark train`'s options: the parser is generated from it, a saved run's options
read back as it, and the augmentation takes its defaults from it."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from landmark_lib.artifacts.train_config import TrainConfig
from landmark_lib.data.transforms import AugmentConfig
from landmark_lib.train import options


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    return p


def test_the_parser_defaults_are_the_dataclass_defaults():
    assert vars(parser().parse_args([])) == asdict(TrainConfig())


def test_flags_parse_into_the_typed_fields():
    args = parser().parse_args(["--data", "a", "b", "--lr", "0.01", "--epochs", "3", "--no-augment", "--cpu"])
    config = TrainConfig.from_dict(vars(args))
    assert (config.data, config.lr, config.epochs, config.no_augment, config.cpu) == (["a", "b"], 0.01, 3, True, True)


def test_an_old_runs_options_read_back_with_todays_defaults():
    saved = {"data": "../photos", "seed": 3, "a_removed_option": 1}  # one root as a string, no newer options
    config = TrainConfig.from_dict(saved)
    assert config.data == ["../photos"] and config.seed == 3 and config.feature_views == TrainConfig().feature_views


def test_augmentation_defaults_are_the_training_options():
    train = TrainConfig()
    assert asdict(AugmentConfig()) == {name: getattr(train, name) for name in asdict(AugmentConfig())}


def test_the_recipe_names_every_changed_option_and_nothing_machine_local():
    config = TrainConfig(
        data=["/home/someone/data/world_landmarks"], clip_grad=0.0, hflip=0.0, no_augment=True, cache_dir="/tmp/x"
    )
    # a changed option set to 0 (gradient clipping off, no flips) is part of how the run was made
    assert config.recipe() == ["--data", "world_landmarks", "--clip-grad", "0.0", "--no-augment", "--hflip", "0.0"]
