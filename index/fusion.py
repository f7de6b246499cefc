"""Fusing ranked lists and keeping them diverse. Pure functions over ids and scores.

A ranked list is a sequence of `(id, score)` pairs, best first. Ids are chunk ids; groups are article ids.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

Ranked = Sequence[tuple[int, float]]


def rrf(lists: Sequence[Ranked], weights: Sequence[float] | None = None, k: float = 60.0) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion: each list adds weight / (k + rank) to an id, rank counted from 1.

    >>> rrf([[(1, 9.0), (2, 8.0)], [(2, 0.9), (3, 0.8)]], k=1)
    [(2, 0.8333333333333333), (1, 0.5), (3, 0.3333333333333333)]
    >>> rrf([[(1, 9.0), (2, 8.0)], [(2, 0.9), (3, 0.8)]], weights=[3, 1], k=1)
    [(1, 1.5), (2, 1.5), (3, 0.3333333333333333)]
    """
    weights = [1.0] * len(lists) if weights is None else weights
    fused: dict[int, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for rank, (item, _) in enumerate(ranked, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return _sorted(fused)


def normalize(ranked: Ranked) -> list[tuple[int, float]]:
    """Min-max scale a list's scores to [0, 1] (all 1.0 when they are equal).

    >>> normalize([(4, 10.0), (5, 6.0), (6, 2.0)])
    [(4, 1.0), (5, 0.5), (6, 0.0)]
    >>> normalize([(4, 3.0)])
    [(4, 1.0)]
    """
    if not ranked:
        return []
    high = max(score for _, score in ranked)
    low = min(score for _, score in ranked)
    span = high - low
    return [(item, (score - low) / span if span > 0 else 1.0) for item, score in ranked]


def score_fusion(lists: Sequence[Ranked], weights: Sequence[float] | None = None) -> list[tuple[int, float]]:
    """Weighted sum of min-max normalized scores; an id missing from a list gets 0 from it.

    >>> score_fusion([[(1, 10.0), (2, 0.0)], [(2, 0.9), (3, 0.5)]], weights=[0.5, 0.5])
    [(1, 0.5), (2, 0.5), (3, 0.0)]
    >>> score_fusion([[(1, 10.0), (2, 5.0), (3, 0.0)], [(2, 0.9), (3, 0.5)]], weights=[0.6, 0.4])
    [(2, 0.7), (1, 0.6), (3, 0.0)]
    """
    weights = [1.0] * len(lists) if weights is None else weights
    fused: dict[int, float] = {}
    for ranked, weight in zip(lists, weights, strict=True):
        for item, score in normalize(ranked):
            fused[item] = fused.get(item, 0.0) + weight * score
    return _sorted(fused)


def fuse(lists: Sequence[Ranked], weights: Sequence[float] | None = None, method: str = "score", rrf_k: float = 60.0) -> list[tuple[int, float]]:
    """Fuse ranked lists by `method`: "score" (normalized score sum) or "rrf" (reciprocal rank).

    >>> fuse([[(1, 2.0), (2, 1.0)], [(2, 1.0), (1, 0.0)]], method="rrf", rrf_k=0)
    [(1, 1.5), (2, 1.5)]
    """
    if method == "rrf":
        return rrf(lists, weights, k=rrf_k)
    if method == "score":
        return score_fusion(lists, weights)
    raise ValueError(f"unknown fusion method {method!r}: use 'score' or 'rrf'")


def boost(ranked: Ranked, bonus: Callable[[int], float]) -> list[tuple[int, float]]:
    """Add `bonus(id)` to every score and re-sort; used for soft hints such as a named source or date.

    >>> boost([(1, 1.0), (2, 0.9)], lambda item: 0.5 if item == 2 else 0.0)
    [(2, 1.4), (1, 1.0)]
    """
    return _sorted({item: score + bonus(item) for item, score in ranked})


def interleave(lists: Sequence[Ranked]) -> list[tuple[int, float]]:
    """Round-robin merge of ranked lists, first occurrence of an id wins; keeps each list's own scores.

    >>> interleave([[(1, 0.9), (2, 0.8)], [(3, 0.7), (1, 0.6), (4, 0.5)]])
    [(1, 0.9), (3, 0.7), (2, 0.8), (4, 0.5)]
    """
    merged: list[tuple[int, float]] = []
    seen: set[int] = set()
    for position in range(max((len(ranked) for ranked in lists), default=0)):
        for ranked in lists:
            if position < len(ranked) and ranked[position][0] not in seen:
                seen.add(ranked[position][0])
                merged.append(ranked[position])
    return merged


def diversify(ranked: Ranked, group_of: Callable[[int], Hashable], per_group: int, k: int) -> list[tuple[int, float]]:
    """The top k with at most `per_group` ids of one group; if too few remain, capped ids fill up in order.

    >>> groups = {1: "a", 2: "a", 3: "a", 4: "b"}
    >>> diversify([(1, .9), (2, .8), (3, .7), (4, .6)], groups.get, per_group=1, k=3)
    [(1, 0.9), (4, 0.6), (2, 0.8)]
    """
    kept: list[tuple[int, float]] = []
    overflow: list[tuple[int, float]] = []
    counts: dict[Hashable, int] = {}
    for item, score in ranked:
        group = group_of(item)
        if counts.get(group, 0) < per_group:
            counts[group] = counts.get(group, 0) + 1
            kept.append((item, score))
            if len(kept) == k:
                return kept
        else:
            overflow.append((item, score))
    return kept + overflow[: k - len(kept)]


def _sorted(scores: dict[int, float]) -> list[tuple[int, float]]:
    """Items by descending score, ties broken by ascending id so results are deterministic."""
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
