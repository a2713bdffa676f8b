"""Which simglucose virtual patients train, validate and evaluate.

The split is by patient, fixed here and nowhere else: the evaluation patients
(#009 and #010 of each cohort) never enter training, and decision thresholds
are tuned on the validation patients (#008), never on evaluation patients.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import simglucose


def _cohort(numbers: range) -> list[str]:
    return [f"{group}#{n:03d}" for group in ("adolescent", "adult", "child") for n in numbers]


SPLITS = {
    "train": _cohort(range(1, 8)),
    "validation": _cohort(range(8, 9)),
    "eval": _cohort(range(9, 11)),
}

# Sensor cadences seen in the field: Libre 2/3 (1 min), Medtronic/Dexcom
# (5 min, also 3-min backfill), older flash sensors read every 15 min.
CADENCES = (1, 3, 5, 15)
EVAL_CADENCES = (5, 1, 15, 5, 3, 5)


def cadence_for(split: str, index: int, rng: np.random.Generator) -> int:
    """Evaluation patients get a fixed spread of cadences so every cadence is
    in the table; training patients draw one at random."""
    if split == "eval":
        return EVAL_CADENCES[index % len(EVAL_CADENCES)]
    return int(rng.choice(CADENCES, p=[0.25, 0.15, 0.45, 0.15]))


@lru_cache(maxsize=1)
def _quest() -> dict[str, dict[str, float]]:
    path = Path(simglucose.__file__).parent / "params" / "Quest.csv"
    with path.open() as handle:
        return {row["Name"]: {k: float(v) for k, v in row.items() if k != "Name"} for row in csv.DictReader(handle)}


def quest_row(name: str) -> dict[str, float]:
    """Carb ratio (CR) and correction factor (CF) of a virtual patient."""
    return _quest()[name]
