"""Fusion of ranked lists and the per-article diversity cap."""

import doctest

import pytest

import index.fusion as fusion
from index.fusion import boost, diversify, fuse, interleave, normalize, rrf, score_fusion


def test_doctests():
    assert doctest.testmod(fusion).failed == 0


def test_rrf_rewards_agreement():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    keyword = [(4, 12.0), (2, 11.0), (3, 1.0)]
    fused = rrf([dense, keyword], k=60)
    assert fused[0][0] == 2  # second in both beats first in one
    assert {item for item, _ in fused} == {1, 2, 3, 4}


def test_rrf_weights_shift_the_winner():
    dense = [(1, 0.9), (2, 0.1)]
    keyword = [(2, 5.0), (1, 0.1)]
    assert rrf([dense, keyword], weights=[0.3, 0.7])[0][0] == 2
    assert rrf([dense, keyword], weights=[0.7, 0.3])[0][0] == 1


def test_score_fusion_ignores_scale():
    # BM25 scores are in the tens, cosine below 1: normalization puts them on one footing.
    dense = [(1, 0.52), (2, 0.50), (3, 0.10)]
    keyword = [(2, 30.0), (1, 3.0), (3, 0.0)]
    fused = dict(score_fusion([dense, keyword], weights=[0.5, 0.5]))
    assert fused[2] > fused[1] > fused[3]
    assert fused[2] == pytest.approx(0.5 * (0.40 / 0.42) + 0.5)


def test_normalize_empty_and_constant():
    assert normalize([]) == []
    assert normalize([(1, 2.0), (2, 2.0)]) == [(1, 1.0), (2, 1.0)]


def test_fuse_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown fusion method 'max'"):
        fuse([[(1, 1.0)]], method="max")


def test_boost_reorders():
    assert [item for item, _ in boost([(1, 1.0), (2, 0.95), (3, 0.9)], lambda i: 0.2 if i == 3 else 0)] == [3, 1, 2]


def test_interleave_takes_turns_and_dedups():
    merged = interleave([[(1, 1.0), (2, 0.9)], [(1, 0.5), (3, 0.4)], []])
    assert [item for item, _ in merged] == [1, 2, 3]


def test_diversify_caps_each_article():
    article = {1: "a", 2: "a", 3: "a", 4: "a", 5: "b", 6: "c"}
    ranked = [(i, 1.0 - i / 10) for i in range(1, 7)]
    top = diversify(ranked, article.get, per_group=2, k=4)
    assert [item for item, _ in top] == [1, 2, 5, 6]
    assert max(sum(article[i] == g for i, _ in top) for g in "abc") <= 2


def test_diversify_fills_up_when_too_few_articles():
    article = {1: "a", 2: "a", 3: "a"}
    top = diversify([(1, 0.9), (2, 0.8), (3, 0.7)], article.get, per_group=1, k=3)
    assert [item for item, _ in top] == [1, 2, 3]
