"""Search strategies: grid, random (without replacement) and a DEAP genetic algorithm.

Each search drives the job: it hands lists of params to ``evaluate(batch) -> scores`` (higher is
better, ``-inf`` for infeasible/failed trials) supplied by the runner, which may raise `SearchCancelledError`
(cancellation). Searches are deterministic given the seed, so a resumed job replays them exactly.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from qlm_kernel.errors import OptimizationError
from qlm_kernel.optimization.space import Space, combo_at, genes_to_params, grid_size
from qlm_kernel.store import trial_key

AUTO_GRID_LIMIT = 5000
DEFAULT_RANDOM_TRIALS = 200
DEFAULT_GENETIC_TRIALS = 1000
METHODS = ("auto", "grid", "random", "genetic")

Evaluate = Callable[[list[dict[str, Any]]], list[float]]


class SearchCancelledError(Exception):
    """Raised by the runner's evaluate callback to end the search early (cancel)."""


def choose_method(method: str, space: Space) -> str:
    """Resolve "auto": grid up to `AUTO_GRID_LIMIT` combinations, genetic above."""
    if method not in METHODS:
        raise OptimizationError(
            f"unknown method {method!r}",
            hint=f"use one of {', '.join(METHODS)}",
            code="BAD_METHOD",
            method=method,
        )
    if method == "auto":
        return "grid" if grid_size(space) <= AUTO_GRID_LIMIT else "genetic"
    return method


def planned_trials(method: str, space: Space, n_trials: int | None) -> int:
    """How many evaluations the search will run at most (the job's progress total)."""
    total = grid_size(space)
    if n_trials is not None and (isinstance(n_trials, bool) or int(n_trials) < 1):
        raise OptimizationError(
            f"n_trials must be a positive int, got {n_trials!r}",
            hint="e.g. n_trials=200",
            code="BAD_N_TRIALS",
        )
    if method == "grid":
        return total
    default = DEFAULT_RANDOM_TRIALS if method == "random" else DEFAULT_GENETIC_TRIALS
    return int(min(total, n_trials if n_trials is not None else default))


def _chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def grid_search(space: Space, evaluate: Evaluate, batch_size: int) -> None:
    """Every combination, ``batch_size`` at a time, in `reuse_order`."""
    outer_first = reuse_order(space)
    combos = ({k: c[k] for k in space} for c in (combo_at(outer_first, i) for i in range(grid_size(space))))
    for chunk in _chunks(combos, batch_size):
        evaluate(chunk)


def reuse_order(space: Space) -> Space:
    """The space with the parameter of most values first (varying slowest), then the next: consecutive
    trials then share the values of the long parameters, so an indicator computed for one value is reused
    by the next trials while it is still in the job's indicator memo (a 10 x 100 SMA grid computes ~110
    averages instead of ~1000). Same combinations, another order; ties keep the declared order."""
    names = sorted(space, key=lambda k: -len(space[k]))
    return {k: space[k] for k in names}


def random_indices(space: Space, n_trials: int, seed: int) -> list[int]:
    """``n_trials`` distinct grid indices drawn with the seed (no replacement)."""
    total = grid_size(space)
    rng = np.random.default_rng(seed)
    if total <= 2**62:
        return [int(i) for i in rng.choice(total, size=n_trials, replace=False)]
    picked: dict[int, None] = {}  # astronomically large grids: rejection sampling
    pyrng = random.Random(seed)
    while len(picked) < n_trials:
        picked.setdefault(pyrng.randrange(total))
    return list(picked)


def random_search(space: Space, evaluate: Evaluate, n_trials: int, seed: int, batch_size: int) -> None:
    """``n_trials`` distinct random combinations, reproducible with ``seed``."""
    indices = random_indices(space, n_trials, seed)
    for chunk in _chunks((combo_at(space, i) for i in indices), batch_size):
        evaluate(chunk)


def mutate_index(ind: list[int], uppers: list[int], indpb: float) -> None:
    """Index mutation: each gene with probability ``indpb`` jumps anywhere (half the time, as DEAP's
    mutUniformInt) or steps to a neighbouring grid value (local refinement near a good region)."""
    for i, up in enumerate(uppers):
        if up == 0 or random.random() >= indpb:
            continue
        if random.random() < 0.5:
            ind[i] = random.randint(0, up)
        else:
            step = max(1, int(abs(random.gauss(0.0, max(1.0, up / 20)))))
            ind[i] = min(up, max(0, ind[i] + (step if random.random() < 0.5 else -step)))


@contextlib.contextmanager
def _own_random(state: list[Any]) -> Iterator[None]:
    """Run DEAP's operators (which use the global `random`) on our own seeded state, then restore."""
    outer = random.getstate()
    random.setstate(state[0])
    try:
        yield
    finally:
        state[0] = random.getstate()
        random.setstate(outer)


def genetic_search(
    space: Space,
    evaluate: Evaluate,
    n_trials: int,
    seed: int,
    *,
    patience: int = 5,
    cxpb: float = 0.6,
    mutpb: float = 0.5,
    tournsize: int = 3,
) -> list[Any]:
    """DEAP GA over index genes (one per parameter); returns the hall of fame (best first).

    Population max(20, 4 * dims); tournament selection, two-point crossover, index mutation (`mutate_index`),
    one elite kept. Stops after ``n_trials`` distinct evaluations, when every combination was seen,
    or when the best has not improved for ``patience`` generations. A params set is evaluated once
    (memoized by trial key); duplicates in a generation reuse the memo.
    """
    from deap import base, tools

    class Fitness(base.Fitness):
        weights = (1.0,)

    class Individual(list):
        def __init__(self, genes: Any) -> None:
            super().__init__(genes)
            self.fitness = Fitness()

    names = list(space)
    uppers = [len(space[n]) - 1 for n in names]
    dims = len(names)
    total = grid_size(space)
    pop_size = max(20, 4 * dims)
    state = [random.Random(seed).getstate()]
    memo: dict[str, float] = {}

    def assess(individuals: list[Any]) -> bool:
        """Score individuals (new params sets evaluated in one call); False once the budget ran out."""
        pending: dict[str, dict[str, Any]] = {}
        for ind in individuals:
            params = genes_to_params(space, list(ind))
            key = trial_key(params)
            if key not in memo and key not in pending:
                pending[key] = params
        room = n_trials - len(memo)
        keys = list(pending)[: max(room, 0)]
        if keys:
            scores = evaluate([pending[k] for k in keys])
            memo.update(zip(keys, scores, strict=True))
        scored = True
        for ind in individuals:
            key = trial_key(genes_to_params(space, list(ind)))
            if key in memo:
                ind.fitness.values = (memo[key],)
            else:
                scored = False
        return scored and len(memo) < min(n_trials, total)

    with _own_random(state):
        pop = [Individual([random.randint(0, up) for up in uppers]) for _ in range(pop_size)]
    hof = tools.HallOfFame(1)
    going = assess(pop)
    pop = [ind for ind in pop if ind.fitness.valid]
    hof.update(pop)
    best = hof[0].fitness.values[0] if len(hof) else -math.inf
    stale = 0
    while going and stale < patience:
        with _own_random(state):
            offspring = [Individual(ind) for ind in tools.selTournament(pop, pop_size, tournsize)]
            for a, b in zip(offspring[::2], offspring[1::2], strict=False):
                if dims > 1 and random.random() < cxpb:
                    tools.cxTwoPoint(a, b)
            for ind in offspring:
                if random.random() < mutpb:
                    mutate_index(ind, uppers, indpb=max(1.0 / dims, 0.2))
        going = assess(offspring)
        offspring = [ind for ind in offspring if ind.fitness.valid]
        if len(hof):
            offspring.sort(key=lambda ind: ind.fitness.values[0])
            offspring[0:1] = [Individual(hof[0])]  # elitism: the best so far replaces the worst
            offspring[0].fitness.values = hof[0].fitness.values
        pop = offspring
        hof.update(pop)
        new_best = hof[0].fitness.values[0] if len(hof) else -math.inf
        stale = 0 if new_best > best else stale + 1
        best = max(best, new_best)
    return list(hof)
