#!/usr/bin/env python3
"""Reproducible labelled CGM data for glyco-ml.

CGM traces come from the UVA/Padova simulator (simglucose's 30 virtual
patients and its Johnson-SU sensor noise model), driven by a randomised
basal-bolus therapy with realistic meals, carb-counting errors, missed and
late boluses and rescue carbohydrates. Sensor faults that simglucose cannot
make are then written in by `faults.py` and labelled per reading.

One command (see docs/ML.md):

    ml/.venv/bin/python ml/training/generate.py --split eval --days 4 --seed 7 \
        --out ml/data/eval.csv

The output is the CSV format that `glyco-ml eval --csv` reads:
subject_id,timestamp,glucose_mg_dl,fault,source
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faults  # noqa: E402  (sibling module; the training dir is not a package)
import splits  # noqa: E402

# simglucose logs every meal at INFO level; keep stdout for our own summary.
logging.getLogger("simglucose").setLevel(logging.WARNING)

from simglucose.patient.t1dpatient import Action, T1DPatient  # noqa: E402
from simglucose.sensor.noise_gen import CGMNoise  # noqa: E402

START = datetime(2026, 1, 5, 0, 0, tzinfo=timezone.utc)
# Dexcom-like sensor model from simglucose's sensor_params.csv; only the
# sample time changes per simulated device.
SENSOR_PARAMS = {
    "PACF": 0.7,
    "gamma": -0.5444,
    "lambda": 15.9574,
    "delta": 1.6898,
    "xi": -5.47,
    "min": 40.0,
    "max": 400.0,
}


def subject_rng(seed: int, name: str) -> np.random.Generator:
    """A stream per (seed, patient) so one patient's data does not depend on
    which other patients were generated in the same run."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def day_meals(rng: np.random.Generator, body_weight: float) -> list[tuple[int, float]]:
    """(minute of day, grams of carbohydrate) for one day, scaled to body weight
    so children do not eat adult meals."""
    scale = float(np.clip(body_weight / 70.0, 0.45, 1.2))
    meals = [
        (rng.normal(7.5 * 60, 40), rng.uniform(35, 70)),
        (rng.normal(12.75 * 60, 45), rng.uniform(45, 90)),
        (rng.normal(19.0 * 60, 50), rng.uniform(55, 110)),
    ]
    if rng.random() < 0.6:
        meals.append((rng.uniform(15 * 60, 17 * 60), rng.uniform(10, 30)))
    if rng.random() < 0.3:
        meals.append((rng.uniform(21.5 * 60, 23 * 60), rng.uniform(10, 25)))
    return [(int(np.clip(m, 0, 1439)), g * scale) for m, g in meals]


def simulate(name: str, minutes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-minute subcutaneous glucose and plasma glucose (mg/dL)."""
    patient = T1DPatient.withName(name)
    params = patient._params
    quest = splits.quest_row(name)
    basal_u_per_min = params.u2ss * params.BW / 6000.0
    gsub = np.empty(minutes)
    bg = np.empty(minutes)
    boluses: dict[int, float] = {}
    meals: dict[int, float] = {}
    # Basal that is a little off for a whole day (illness, activity, a wrong
    # profile) is what makes real nights drift low or high.
    basal_factor = 1.0
    low_minutes = 0
    last_rescue = -999
    last_correction = -999
    for minute in range(minutes):
        minute_of_day = minute % 1440
        if minute_of_day == 0:
            day_start = minute
            basal_factor = float(rng.choice([0.85, 1.0, 1.0, 1.1, 1.25, 1.4]))
            for at, grams in day_meals(rng, params.BW):
                meals[day_start + at] = meals.get(day_start + at, 0.0) + grams
                if rng.random() < 0.07:
                    continue  # missed bolus
                count_error = float(np.clip(rng.normal(1.0, 0.25), 0.5, 1.8))
                delay = int(rng.choice([0, 0, 0, 15, 30, -15]))
                bolus = grams * count_error / quest["CR"]
                boluses[max(day_start + at + delay, 0)] = bolus
            # Afternoon activity: insulin works harder for a few hours.
            if rng.random() < 0.35:
                start = day_start + int(rng.uniform(14 * 60, 18 * 60))
                for m in range(start, min(start + int(rng.uniform(60, 180)), minutes)):
                    boluses[m] = boluses.get(m, 0.0) + basal_u_per_min * 0.8
        glucose = patient.observation.Gsub
        low_minutes = low_minutes + 1 if glucose < 65 else 0
        cho = meals.pop(minute, 0.0)
        # A patient treats a low with 15-20 g after noticing it for a while.
        if low_minutes >= int(rng.integers(10, 30)) and minute - last_rescue > 30:
            cho += float(rng.uniform(12, 25))
            last_rescue = minute
        insulin = basal_u_per_min * basal_factor + boluses.pop(minute, 0.0)
        if glucose > 260 and minute - last_correction > 180 and rng.random() < 0.02:
            insulin += (glucose - 140) / quest["CF"] * float(rng.uniform(0.6, 1.1))
            last_correction = minute
        patient.step(Action(CHO=cho, insulin=insulin))
        gsub[minute] = patient.observation.Gsub
        bg[minute] = patient.state[3] / params.Vg
    return gsub, bg


def sense(
    gsub: np.ndarray, cadence: int, rng: np.random.Generator, noise_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample the sensor every `cadence` minutes with simglucose's noise model,
    a per-sensor calibration error and integer output, as real CGMs report."""
    params = dict(SENSOR_PARAMS, sample_time=float(cadence))
    noise = CGMNoise(params, seed=noise_seed)
    minutes = np.arange(0, len(gsub), cadence)
    noise_scale = float(rng.uniform(0.5, 1.1))
    gain = float(rng.normal(1.0, 0.04))
    values = np.array([gsub[m] * gain + noise_scale * next(noise) for m in minutes])
    values = np.clip(np.round(values), SENSOR_PARAMS["min"], SENSOR_PARAMS["max"])
    return minutes, values


def fingersticks(
    bg: np.ndarray, rng: np.random.Generator
) -> list[tuple[int, float]]:
    """Capillary meter readings before meals and at bedtime: the reference that
    makes sensor drift visible at all."""
    out = []
    for day_start in range(0, len(bg), 1440):
        for hour in (7.0, 12.5, 19.0, 22.5):
            if rng.random() < 0.7:
                m = day_start + int(rng.normal(hour * 60, 20))
                if 0 <= m < len(bg):
                    out.append((m, float(np.round(bg[m] * rng.normal(1.0, 0.04)))))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=sorted(splits.SPLITS), required=True)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--patients", type=int, default=0,
                        help="use only the first N patients of the split (0 = all)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    names = splits.SPLITS[args.split]
    if args.patients:
        names = names[: args.patients]
    minutes_total = int(round(args.days * 1440))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["subject_id", "timestamp", "glucose_mg_dl", "fault", "source"])
        for index, name in enumerate(names):
            rng = subject_rng(args.seed, name)
            cadence = splits.cadence_for(args.split, index, rng)
            gsub, bg = simulate(name, minutes_total, rng)
            minutes, values = sense(gsub, cadence, rng, int(rng.integers(2**31)))
            trace = faults.inject(minutes.astype(float), values, cadence, rng)
            # Rows are (true minute, reported minute, value, label, source).
            rows = [(true_t, t, v, label, "cgm") for true_t, t, v, label in trace]
            # Meter readings come from another device: a CGM clock jump does
            # not move them, and they interleave in real time.
            rows += [(float(m), float(m), v, "none", "capillary") for m, v in fingersticks(bg, rng)]
            rows.sort(key=lambda r: (r[0], r[4]))
            subject = f"{name.replace('#', '-')}-{cadence}min"
            for _, t, v, label, source in rows:
                stamp = START + timedelta(minutes=t)
                writer.writerow([subject, stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), int(v), label, source])
                counts[label] = counts.get(label, 0) + 1
            print(f"{subject}: {len(trace)} CGM readings", file=sys.stderr)
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
