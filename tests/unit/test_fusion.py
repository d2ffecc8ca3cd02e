"""search.fuse's normalizations, worked by hand as OpenSearch's normalization-processor computes them."""

from __future__ import annotations

import statistics

import pytest

from agentplatform.search import MIN_MAX_FLOOR, Fusion, FusionTechnique, fuse

Z_SCORE = Fusion(FusionTechnique.Z_SCORE, weights=(0.5, 0.5))


def test_min_max_maps_each_list_to_the_floor_and_one() -> None:
    fused = dict(fuse([("a", 9.0), ("b", 3.0)], [("b", 0.8), ("c", 0.6)], Fusion()))
    assert fused == pytest.approx({"a": 0.5, "b": 0.5 * MIN_MAX_FLOOR + 0.5, "c": 0.5 * MIN_MAX_FLOOR})


def test_z_score_counts_sample_deviations_above_the_mean_and_floors_the_rest() -> None:
    bm25 = [("a", 12.0), ("b", 4.0), ("c", 3.0), ("d", 1.0)]
    mean, deviation = statistics.fmean([12.0, 4.0, 3.0, 1.0]), statistics.stdev([12.0, 4.0, 3.0, 1.0])
    fused = dict(fuse(bm25, [], Fusion(FusionTechnique.Z_SCORE, weights=(1.0, 0.0))))
    assert fused["a"] == pytest.approx((12.0 - mean) / deviation)
    assert fused["b"] == fused["c"] == fused["d"] == pytest.approx(MIN_MAX_FLOOR)


def test_z_score_lets_a_sharp_list_outweigh_a_flat_one() -> None:
    # One chunk stands far out of the BM25 list (an identifier only it holds); the dense list is flat and led by
    # a chunk BM25 barely matched. Min-max stretches the flat list to 0-1 and puts that chunk first; z-score
    # keeps the sharp lead.
    bm25 = [("exact", 20.0), ("x", 2.0), ("y", 1.9), ("z", 1.8)]
    dense = [("x", 0.62), ("near", 0.61), ("y", 0.60), ("z", 0.59)]
    assert fuse(bm25, dense, Fusion())[0][0] == "x"
    assert fuse(bm25, dense, Z_SCORE)[0][0] == "exact"


def test_z_score_edge_cases_are_opensearchs() -> None:
    # A lone hit equals its list's mean: it gets the list's raw maximum (its own score), as in OpenSearch.
    assert fuse([("a", 7.5)], [], Fusion(FusionTechnique.Z_SCORE, weights=(1.0, 0.0))) == [("a", 7.5)]
    assert fuse([], [], Z_SCORE) == []
