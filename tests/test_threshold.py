import torch

from landmark_lib.evaluation.threshold import MIN_THRESHOLD, choose_threshold


def test_threshold_keeps_only_confident_predictions_that_are_precise_enough():
    # 8 confident right answers, then 2 wrong ones at 0.6/0.5, then right ones at low confidence.
    confidence = torch.tensor([0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.6, 0.5, 0.45, 0.4])
    right = torch.tensor([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1], dtype=torch.bool)
    probs = torch.zeros(12, 3)
    probs[:, 0] = confidence
    probs[:, 1] = 1 - confidence
    targets = torch.where(right, 0, 1)
    result = choose_threshold(probs, targets, ["a", "b", "c"], target_precision=0.9)
    assert result["threshold"] == 0.92  # 0.6 would let a wrong answer in at 8/9 < 0.9 precision
    assert result["valid_precision"] == 1.0
    assert abs(result["valid_coverage"] - 8 / 12) < 1e-6


def test_threshold_never_drops_below_the_floor_even_when_vague_guesses_are_right():
    probs = torch.full((4, 20), 0.9 / 19)
    probs[:, 3] = 0.1  # right, but only 10% sure: a 20-way softmax barely above uniform
    result = choose_threshold(probs, torch.full((4,), 3), [f"c{i}" for i in range(20)], target_precision=0.95)
    assert result["threshold"] == MIN_THRESHOLD
    assert result["valid_coverage"] == 0.0 and result["valid_precision"] is None
