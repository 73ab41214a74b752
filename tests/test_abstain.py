"""The abstain rule on hand-made features: the calibrated threshold accepts
its share of the calibration images, ``unknown`` is below it or below the
confidence floor, and bad calibration input fails naming the problem."""
import numpy as np
import pytest

from discovery.abstain import calibrate, knn_similarity, prototype_similarity, unknown_mask


def test_similarity_is_the_best_cosine_to_any_prototype():
    prototypes = np.array([[1.0, 0.0], [0.0, 2.0]])
    features = np.array([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    assert prototype_similarity(features, prototypes) == pytest.approx([1.0, np.sqrt(0.5), 0.0])


def test_knn_similarity_is_the_mean_of_the_k_best_cosines_by_hand():
    reference = np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])
    features = np.array([[5.0, 0.0], [0.0, -3.0]])
    # cosines: row 0 -> 1, 0, -1, sqrt(.5); row 1 -> 0, -1, 0, -sqrt(.5)
    assert knn_similarity(features, reference, 1) == pytest.approx([1.0, 0.0])
    assert knn_similarity(features, reference, 2) == pytest.approx([(1 + np.sqrt(0.5)) / 2, 0.0])
    assert knn_similarity(features, reference, 4, rows=1) == pytest.approx([np.sqrt(0.5) / 4, (-1 - np.sqrt(0.5)) / 4])


def test_calibrated_threshold_accepts_its_share_of_the_training_images():
    rng = np.random.default_rng(0)
    prototypes, features = rng.normal(size=(7, 16)), rng.normal(size=(2000, 16))
    for accept in (0.95, 0.8):
        calibration = calibrate(features, prototypes, accept)
        scores = prototype_similarity(features, prototypes)
        rejected = unknown_mask(scores, np.ones(len(scores)), calibration)
        assert rejected.mean() == pytest.approx(1 - accept, abs=1e-3)
        assert calibration["images"] == 2000 and calibration["accept"] == accept
    far = -prototypes.sum(axis=0, keepdims=True)  # opposite to every prototype on average
    assert unknown_mask(prototype_similarity(far, prototypes), [1.0], calibrate(features, prototypes)).all()


def test_confidence_floor_and_no_calibration():
    similarity, confidence = np.array([0.9, 0.9, 0.1]), np.array([0.2, 0.8, 0.8])
    assert unknown_mask(similarity, confidence, None).tolist() == [False, False, False]
    assert unknown_mask(similarity, confidence, None, min_confidence=0.5).tolist() == [True, False, False]
    assert unknown_mask(similarity, confidence, {"threshold": 0.5}).tolist() == [False, False, True]


def test_prototype_rows_are_the_valid_ones_and_bad_input_fails():
    import torch

    from models.heads import PrototypeClassifier

    head = PrototypeClassifier(3, 4)
    head.weight.data = torch.arange(12.0).view(4, 3)
    head.valid.fill_(2)
    assert head.valid_rows().tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="no training features"):
        calibrate(np.zeros((0, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"accept=1.5 must be in \(0, 1\]"):
        calibrate(np.ones((4, 3)), np.ones((2, 3)), accept=1.5)
