"""Walk-forward fold geometry on one symbol's time axis. Pure, no pandas, no Django.

A symbol's ``rows`` labelled rows (time order) are cut into ``folds + 1`` equal blocks of
``rows // (folds + 1)`` rows (the remainder goes to the first block). Fold ``k`` (0-based) tests
block ``k + 1``; it trains on every row before that block except the last ``purge + embargo``:

- purge = the label horizon: a training row's label reads the close ``horizon`` candles ahead;
- embargo = the feature window: the first test row's features read ``window`` candles back.

So fold ``k`` trains on ``[0, test_start - purge - embargo)`` and tests ``[test_start,
test_start + size)``: windows expand, every training row's candles (its feature window and its
label window) end before any candle a test row reads, and rows are never shuffled.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class FoldBounds:
    """One fold on one symbol's rows: train ``[0, train_end)``, test ``[test_start, test_end)``."""

    index: int
    train_end: int
    test_start: int
    test_end: int


def fold_bounds(
    rows: int, *, folds: int, purge: int, embargo: int, min_train: int, min_test: int
) -> list[FoldBounds]:
    """The ``folds`` expanding-window folds of ``rows`` time-ordered rows (module docstring).

    Raises ``ValueError`` when the first fold would train on fewer than ``min_train`` rows or a
    test block would hold fewer than ``min_test``.
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    if purge < 0 or embargo < 0:
        raise ValueError("purge and embargo cannot be negative")
    size = rows // (folds + 1)
    gap = purge + embargo
    first_train = rows - folds * size - gap
    if size < min_test or first_train < min_train:
        raise ValueError(
            f"{rows} rows give {folds} test folds of {size} rows and a first training window of "
            f"{max(first_train, 0)} rows (after a purge of {purge} and an embargo of {embargo}); "
            f"each test fold needs at least {min_test} and the first window {min_train}"
        )
    bounds = []
    for index in range(folds):
        test_start = rows - (folds - index) * size
        bounds.append(
            FoldBounds(
                index=index,
                train_end=test_start - gap,
                test_start=test_start,
                test_end=test_start + size,
            )
        )
    return bounds
