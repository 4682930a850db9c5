"""The main-trial choice of a Start, from a few least-filled candidates per cell (pure: no database).

The problem: `per_cell` items of every cell, no two from one source digit (a participant sees each
source once), as level as possible. "Level" is exact: an item's level is its fill above the least-filled
item of its cell, and a choice costs sum(B ** level) with B = trials + 1. As no level holds more than
`trials` chosen items, comparing two costs compares their histograms of levels from the top, digit by
digit in base B: so every optimal choice picks the same multiset of levels (fewest at the highest
level, then the next, ...), whichever optimal choice the random tie-break lands on.

It is solved as a min-cost flow (cells -> items -> source digits, successive shortest paths), but only
over the items each cell offers: its k lowest by (fill, a fixed random rank). Why that is exact:

    The restricted optimum f is optimal in the whole pool iff no item left out closes a negative cycle
    in f's residual graph. Let pi be shortest distances from a virtual root (every node at 0) in the
    restricted residual graph, under the level costs alone: valid potentials, since f is optimal there
    (no negative cycle). A left-out item e = (cell c -> source s) at level l has reduced cost
    B**l + pi(c) - pi(s). A source that no offered item uses gets pi(sink) (its only residual edge is
    s -> sink, cost 0), so pi(s) <= P := max(pi over the graph's sources and the sink) for every s.
    A cell's left-out items are all at levels >= l_c, the level of the first one not offered (fetched
    as the (k+1)-th). So when B**l_c + pi(c) >= P for every cell with items left out, every edge of
    the whole pool's residual graph has reduced cost >= 0: no negative cycle, f is optimal in the pool.
    A cell that fails offers twice as many and the problem is solved again; a cell that offers all of
    its items needs no check, so this ends, at worst with the whole pool.

The random tie-break (plus a preference for source digits that are least-filled in several cells) is
scaled below one level step over any cycle, so it never trades balance; tests/study_app/
test_app_least_filled.py compares the restricted choice with the whole-pool solve on random pools.
"""
from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence

from .planning import AllocationError, Item

Cell = tuple[str, ...]
Offered = Sequence[tuple[Item, int]]  # (item, fill count), lowest first within each cell
Fetch = Callable[[dict[Cell, int]], dict[Cell, list[tuple[Item, int]]]]  # each cell's n lowest (fill, rank) items


class _Graph:
    """A residual graph: edge e and its reverse e ^ 1, each with a tie-broken and a level-only cost."""

    def __init__(self, n: int):
        self.out: list[list[int]] = [[] for _ in range(n)]
        self.to: list[int] = []
        self.cap: list[int] = []
        self.cost: list[int] = []
        self.level: list[int] = []
        self.item: list[Item | None] = []

    def edge(self, u: int, v: int, cap: int, cost: int, level: int = 0, item: Item | None = None) -> None:
        for a, b, c, w, g in ((u, v, cap, cost, level), (v, u, 0, -cost, -level)):
            self.out[a].append(len(self.to))
            self.to.append(b), self.cap.append(c), self.cost.append(w), self.level.append(g)
            self.item.append(item)

    def distances(self, costs: list[int], starts: list[int]) -> tuple[list[int | None], list[int]]:
        """Shortest distances over edges with capacity left (SPFA: residual costs can be negative)."""
        dist: list[int | None] = [None] * len(self.out)
        prev = [-1] * len(self.out)
        for s in starts:
            dist[s] = 0
        queue, queued = deque(starts), set(starts)
        while queue:
            u = queue.popleft()
            queued.discard(u)
            du = dist[u]
            for e in self.out[u]:
                v = self.to[e]
                if self.cap[e] > 0 and (dist[v] is None or du + costs[e] < dist[v]):
                    dist[v] = du + costs[e]
                    prev[v] = e
                    if v not in queued:
                        queue.append(v)
                        queued.add(v)
        return dist, prev


def solve(cells: Sequence[Cell], per_cell: int, offered: Offered, seed: int | str
          ) -> tuple[list[Item], dict[Cell, int], int]:
    """The min-cost choice among `offered` (deterministic in its inputs and seed), with each cell's
    potential and the bound P of the module docstring. Raises AllocationError when no choice exists."""
    rng = random.Random(f"{seed}/main")
    offered = sorted(offered, key=lambda o: o[0].key)
    floor: dict[Cell, int] = {}
    for it, n in offered:
        floor[it.cell] = min(floor.get(it.cell, n), n)
    need = per_cell * len(cells)
    base = need + 1
    contested: dict[str, int] = {}
    for it, n in offered:
        if n == floor[it.cell]:
            contested[it.source] = contested.get(it.source, 0) + 1
    tie = 1000 * (max(contested.values(), default=0) + 1)  # |tie-break| of one item edge stays below this
    step = (2 * need + 4) * tie + 1  # one level step outweighs the tie-breaks of any cycle
    sources = sorted({it.source for it, _ in offered})
    cell_id = {c: 2 + k for k, c in enumerate(cells)}
    src_id = {s: 2 + len(cells) + k for k, s in enumerate(sources)}
    g = _Graph(2 + len(cells) + len(sources))  # 0 = start, 1 = sink
    for c in cells:
        g.edge(0, cell_id[c], per_cell, 0)
    for it, n in offered:
        if it.cell not in cell_id:
            continue
        above = n - floor[it.cell]
        w = (0 if above else -1000 * contested[it.source]) + rng.randrange(1000)
        g.edge(cell_id[it.cell], src_id[it.source], 1, step * base ** above + w, base ** above, it)
    for s in sources:
        g.edge(src_id[s], 1, 1, 0)
    for _ in range(need):  # one augmenting path per trial
        dist, prev = g.distances(g.cost, [0])
        if dist[1] is None:
            raise AllocationError("not enough distinct source digits for a balanced sequence")
        v = 1
        while v != 0:
            e = prev[v]
            g.cap[e] -= 1
            g.cap[e ^ 1] += 1
            v = g.to[e ^ 1]
    chosen = [g.item[e] for e in range(0, len(g.to), 2) if g.item[e] is not None and g.cap[e] == 0]
    pi, _ = g.distances(g.level, list(range(len(g.out))))
    bound = max([pi[1]] + [pi[src_id[s]] for s in sources])
    return sorted(chosen, key=lambda it: it.key), {c: pi[cell_id[c]] for c in cells}, bound


def choose(cells: Sequence[Cell], per_cell: int, fetch: Fetch, seed: int | str, first: int | None = None
           ) -> tuple[list[Item], dict[str, int]]:
    """The chosen items and the candidates they were chosen from ({item key: fill}), which is all
    that `solve` needs to choose them again (the allocation log)."""
    k = {c: first or 3 * per_cell + 2 for c in cells}
    base = per_cell * len(cells) + 1
    while True:
        offered: list[tuple[Item, int]] = []
        floor: dict[Cell, int] = {}
        next_level: dict[Cell, int | None] = {}
        fetched = fetch({c: k[c] + 1 for c in cells})  # one round trip for every cell
        for c in cells:
            rows = fetched.get(c, [])
            offered += rows[:k[c]]
            floor[c] = rows[0][1] if rows else 0
            next_level[c] = rows[k[c]][1] - floor[c] if len(rows) > k[c] else None
        partial = [c for c in cells if next_level[c] is not None]
        try:
            chosen, pi, bound = solve(cells, per_cell, offered, seed)
        except AllocationError:
            if not partial:
                raise
            grow = partial  # infeasible among the offered: offer more everywhere we can
        else:
            grow = [c for c in partial if base ** next_level[c] + pi[c] < bound]
            if not grow:
                return chosen, {it.key: n for it, n in offered}
        for c in grow:
            k[c] *= 2
