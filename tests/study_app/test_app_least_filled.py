"""The Start's choice among the least-filled candidates (study_app/leastfilled.py) is exactly as level as
a solve over the whole pool: the same multiset of fill levels, on many random pools (uneven fills,
source digits shared across cells, scarce sources), including ones where the first candidates clash."""
from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from advlegit.study_app.fills import item_rank
from advlegit.study_app.leastfilled import choose, solve
from advlegit.study_app.planning import AllocationError, Item


def _pool(rng: random.Random, n_cells: int, per_source: int, n_sources: int, spread: int):
    cells = [(f"d{c}",) for c in range(n_cells)]
    items, counts = [], {}
    for c in cells:
        for s in rng.sample(range(n_sources), min(n_sources, per_source)):
            for copy in range(rng.choice((1, 1, 2))):  # replicated sets: one source, several items per cell
                key = f"{c[0]}-s{s}-{copy}"
                items.append(Item(key, c, f"src{s}", key, None, 1))
                counts[key] = rng.randrange(spread + 1) if rng.random() < 0.5 else 0
    return cells, items, counts


def _fetch(items, counts, seed=7):
    by_cell = defaultdict(list)
    for it in items:
        by_cell[it.cell].append(it)
    for members in by_cell.values():
        members.sort(key=lambda it: (counts[it.key], item_rank(seed, it.key)))

    def fetch(wanted):
        return {cell: [(it, counts[it.key]) for it in by_cell[cell][:n]] for cell, n in wanted.items()}
    return fetch


def _levels(chosen, items, counts):
    floor = {}
    for it in items:
        floor[it.cell] = min(floor.get(it.cell, counts[it.key]), counts[it.key])
    return sorted(counts[it.key] - floor[it.cell] for it in chosen)


def _check(chosen, cells, per_cell):
    assert len({it.source for it in chosen}) == len(chosen) == per_cell * len(cells)
    assert Counter(it.cell for it in chosen) == {c: per_cell for c in cells}


@pytest.mark.parametrize("trial", range(120))
def test_restricted_choice_is_as_level_as_the_whole_pool(trial):
    rng = random.Random(trial)
    n_cells, per_cell = rng.choice(((2, 3), (3, 2), (4, 2), (4, 4), (6, 1)))
    n_sources = per_cell * n_cells + rng.choice((0, 1, 2, 3, 6, 30))  # mostly scarce: cells compete for sources
    cells, items, counts = _pool(rng, n_cells, rng.randrange(per_cell, n_sources + 1), n_sources, rng.choice((1, 2, 4)))
    offered_all = [(it, counts[it.key]) for it in items]
    try:
        full, _, _ = solve(cells, per_cell, offered_all, seed=trial)
    except AllocationError:
        with pytest.raises(AllocationError):
            choose(cells, per_cell, _fetch(items, counts), seed=trial, first=1)
        return
    _check(full, cells, per_cell)
    for first in (1, per_cell, None):  # from one candidate per cell (forces extensions) to the default
        chosen, offered = choose(cells, per_cell, _fetch(items, counts), seed=trial, first=first)
        _check(chosen, cells, per_cell)
        assert _levels(chosen, items, counts) == _levels(full, items, counts), (first, offered)
        # The log's candidates are enough to choose again, identically.
        again, _, _ = solve(cells, per_cell, [(next(i for i in items if i.key == k), n)
                                              for k, n in offered.items()], seed=trial)
        assert again == chosen


def test_candidates_stay_few_on_a_large_level_pool():
    """20,000 items at one level: a Start reads a few dozen of them, not the pool."""
    rng = random.Random(1)
    cells = [(f"d{c}",) for c in range(4)]
    items = [
        Item(f"d{c}-{k}", (f"d{c}",), f"src{k % 5000}", f"d{c}-{k}", None, 1) for c in range(4) for k in range(5000)
    ]
    counts = {it.key: rng.randrange(2) for it in items}
    read = []
    fetch = _fetch(items, counts)

    def counting_fetch(wanted):
        read.extend(wanted.values())
        return fetch(wanted)
    chosen, offered = choose(cells, 5, counting_fetch, seed=3)
    _check(chosen, cells, 5)
    assert _levels(chosen, items, counts) == [0] * 20
    assert len(offered) <= 4 * 17 and sum(read) <= 4 * 18


@pytest.mark.parametrize("kind, n_defenses, per_cell", [("single", 4, 2), ("pairs", 4, 2), ("pairs", 4, 1)])
def test_sequential_arrivals_through_the_rows_keep_every_item_level(kind, n_defenses, per_cell):
    """300 arrivals, each choosing from the least-filled candidates of the fills so far, keep the items of
    every cell level (as tests/study_app/test_app_allocation.py asks of the whole-pool planner)."""
    from itertools import combinations

    defenses = [f"d{k}" for k in range(n_defenses)]
    cells = [(d,) for d in defenses] if kind == "single" else list(combinations(defenses, 2))
    items = []
    for s in range(24):
        for c in cells:
            if not (s == 0 and "d3" in c):  # one failed attack: an unmatched group
                items.append(Item(f"g{s}|{'|'.join(c)}", c, f"src{s}", f"g{s}", None, 1))
    counts = Counter({it.key: 0 for it in items})
    uneven = 0
    for n in range(300):
        chosen, _ = choose(cells, per_cell, _fetch(items, counts), seed=n)
        _check(chosen, cells, per_cell)
        counts.update(it.key for it in chosen)
        by_cell = defaultdict(list)
        for it in items:
            by_cell[it.cell].append(counts[it.key])
        spread = max(max(f) - min(f) for f in by_cell.values())
        assert spread <= (2 if kind == "pairs" else 1), (n, spread)
        uneven += spread > 1
    assert uneven <= 6


def test_a_feasible_but_uneven_first_choice_is_extended():
    """Cell A's first candidates share one source with cell B's only least-filled item: among them, B
    must take an item one level up. The check sees that A has least-filled items left out, offers more,
    and both cells get a least-filled item (A's from another source)."""
    def item(key, cell, src):
        return Item(key, (cell,), src, key, None, 1)
    a1, a2, a3 = item("a1", "A", "s1"), item("a2", "A", "s1"), item("a3", "A", "s2")
    b1, b2 = item("b1", "B", "s1"), item("b2", "B", "s3")
    offers = {("A",): [(a1, 0), (a2, 0), (a3, 0)], ("B",): [(b1, 0), (b2, 1)]}
    chosen, offered = choose([("A",), ("B",)], 1, lambda wanted: {c: offers[c][:n] for c, n in wanted.items()},
                             seed=1, first=2)
    assert sorted(it.key for it in chosen) == ["a3", "b1"]
    assert "a3" in offered
    among_first, _, _ = solve([("A",), ("B",)], 1, [(a1, 0), (a2, 0), (b1, 0), (b2, 1)], seed=1)
    assert sorted(it.key for it in among_first) in (["a1", "b2"], ["a2", "b2"])  # what the check caught
