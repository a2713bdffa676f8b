#!/usr/bin/env python3
"""Reproducible labelled CGM data for glyco-ml.

Blood glucose comes from the UVA/Padova simulator (simglucose's 30 virtual
patients, and perturbed copies of them: variant 0 is the published patient,
variants 1.. change meal absorption, carb ratio and eating habits), driven by
a randomised basal-bolus therapy with realistic meals, carb-counting errors,
missed and late boluses and rescue carbohydrates. A sensor model
(`sensor.py`: lag, autocorrelated level-dependent error, calibration steps,
device filtering, quantisation, sensor change-overs, compression lows of
real shape) turns it into CGM readings; other sensor faults are written in
by `faults.py` and labelled per reading.

The slow part, the physiology, is cached per (seed, patient, variant, days)
under ml/data/physiology/, so a changed sensor model regenerates in seconds.

One command (see docs/ML.md):

    ml/.venv/bin/python ml/training/generate.py --split eval --days 4 --seed 7 \
        --out ml/data/eval.csv

The output is the CSV format that `glyco-ml eval --csv` reads:
subject_id,timestamp,glucose_mg_dl,fault,source,sensor_session
"""

from __future__ import annotations

import argparse
import csv
import logging
import multiprocessing
import sys
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faults  # noqa: E402  (sibling module; the training dir is not a package)
import sensor as sensor_model  # noqa: E402
import splits  # noqa: E402

# simglucose logs every meal at INFO level; keep stdout for our own summary.
logging.getLogger("simglucose").setLevel(logging.WARNING)

from simglucose.patient.t1dpatient import Action, T1DPatient  # noqa: E402

START = datetime(2026, 1, 5, 0, 0, tzinfo=timezone.utc)
CACHE = Path(__file__).resolve().parent.parent / "data" / "physiology"


def subject_rng(seed: int, name: str, variant: int = 0, stream: str = "") -> np.random.Generator:
    """A stream per (seed, patient, variant) so one patient's data does not
    depend on which other patients were generated in the same run."""
    key = name if variant == 0 and not stream else f"{name}/{variant}/{stream}"
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


@dataclass
class Habits:
    """How a (perturbed) patient eats and doses."""
    meal_scale: float = 1.0
    meal_shift_min: float = 0.0
    carb_ratio_error: float = 1.0


def perturb(patient: T1DPatient, variant: int, rng: np.random.Generator) -> Habits:
    """Variant 0 is the published patient. Other variants change how fast
    meals are absorbed (kabs, kmax, kmin x0.6-1.6: they act only while a meal
    is digested, so the fasting steady state is kept), the carb ratio the
    patient doses with (x0.8-1.25) and meal size and timing."""
    if variant == 0:
        return Habits()
    params = patient._params.copy()
    for name in ("kabs", "kmax", "kmin"):
        params[name] = float(params[name]) * float(rng.uniform(0.6, 1.6))
    patient._params = params
    return Habits(
        meal_scale=float(rng.uniform(0.7, 1.3)),
        meal_shift_min=float(rng.normal(0, 45)),
        carb_ratio_error=float(rng.uniform(0.8, 1.25)),
    )


def day_meals(rng: np.random.Generator, body_weight: float, habits: Habits) -> list[tuple[int, float]]:
    """(minute of day, grams of carbohydrate) for one day, scaled to body weight
    so children do not eat adult meals."""
    scale = float(np.clip(body_weight / 70.0, 0.45, 1.2)) * habits.meal_scale
    meals = [
        (rng.normal(7.5 * 60, 40), rng.uniform(35, 70)),
        (rng.normal(12.75 * 60, 45), rng.uniform(45, 90)),
        (rng.normal(19.0 * 60, 50), rng.uniform(55, 110)),
    ]
    if rng.random() < 0.6:
        meals.append((rng.uniform(15 * 60, 17 * 60), rng.uniform(10, 30)))
    if rng.random() < 0.3:
        meals.append((rng.uniform(21.5 * 60, 23 * 60), rng.uniform(10, 25)))
    return [(int(np.clip(m + habits.meal_shift_min, 0, 1439)), g * scale) for m, g in meals]


def simulate(name: str, variant: int, minutes: int, rng: np.random.Generator) -> np.ndarray:
    """Per-minute plasma glucose (mg/dL)."""
    patient = T1DPatient.withName(name)
    habits = perturb(patient, variant, rng)
    params = patient._params
    quest = splits.quest_row(name)
    basal_u_per_min = params.u2ss * params.BW / 6000.0
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
            for at, grams in day_meals(rng, params.BW, habits):
                meals[day_start + at] = meals.get(day_start + at, 0.0) + grams
                if rng.random() < 0.07:
                    continue  # missed bolus
                count_error = float(np.clip(rng.normal(1.0, 0.25), 0.5, 1.8))
                delay = int(rng.choice([0, 0, 0, 15, 30, -15]))
                bolus = grams * count_error / (quest["CR"] * habits.carb_ratio_error)
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
        bg[minute] = patient.state[3] / params.Vg
    return bg


def physiology(name: str, variant: int, minutes: int, seed: int) -> np.ndarray:
    """Blood glucose per minute, from the cache when it was simulated before."""
    path = CACHE / f"{name.replace('#', '-')}-v{variant}-s{seed}-m{minutes}.npy"
    if path.exists():
        return np.load(path)
    bg = simulate(name, variant, minutes, subject_rng(seed, name, variant, "physiology"))
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, bg)
    tmp.rename(path)
    return bg


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


def subject_rows(job: tuple) -> tuple[str, list[tuple], str]:
    """One subject's rows: (true minute, reported minute, value, label,
    source, session)."""
    split, index, name, variant, seed, minutes_total, cadence_override, kind = job
    rng = subject_rng(seed, name, variant)
    cadence = cadence_override or splits.cadence_for(split, index, rng)
    bg = physiology(name, variant, minutes_total, seed)
    sensor = sensor_model.draw(rng, kind)
    level = sensor_model.first_order(bg, sensor.lag_min)
    attenuation, shape = faults.compression_attenuation(level, rng)
    minutes, values, session, _ = sensor_model.sense(
        bg, attenuation, cadence, sensor, rng, int(rng.integers(2**31)))
    seen_shape = sensor_model.first_order(shape, sensor.filter_min)[minutes]
    labels = ["compression_low" if s >= 0.3 else faults.NONE for s in seen_shape]
    trace = faults.inject(minutes.astype(float), values, cadence, rng, labels)
    session_at = dict(zip(minutes.astype(float), session))
    rows = [(true_t, t, v, label, "cgm", int(session_at[true_t])) for true_t, t, v, label in trace]
    # Meter readings come from another device: a CGM clock jump does not
    # move them, and they interleave in real time.
    rows += [(float(m), float(m), v, "none", "capillary", -1) for m, v in fingersticks(bg, rng)]
    rows.sort(key=lambda r: (r[0], r[4]))
    base = name.replace("#", "-") + (f"-p{variant}" if variant else "")
    return f"{base}-{cadence}min", rows, sensor.describe()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=sorted(splits.SPLITS), required=True)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--patients", type=int, default=0,
                        help="use only the first N patients of the split (0 = all)")
    parser.add_argument("--variants", type=int, default=1,
                        help="copies per patient: 0 = published, 1.. = perturbed")
    parser.add_argument("--cadence", type=int, choices=splits.CADENCES,
                        help="every sensor reads at this cadence (minutes)")
    parser.add_argument("--sensor", choices=["filtered", "raw", "simglucose"],
                        help="every subject wears this kind of sensor")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    names = splits.SPLITS[args.split]
    if args.patients:
        names = names[: args.patients]
    minutes_total = int(round(args.days * 1440))
    jobs = [
        (args.split, index, name, variant, args.seed, minutes_total, args.cadence, args.sensor)
        for variant in range(args.variants)
        for index, name in enumerate(names)
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with multiprocessing.Pool(max(1, args.jobs)) as pool, args.out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["subject_id", "timestamp", "glucose_mg_dl", "fault", "source", "sensor_session"])
        for subject, rows, sensor in pool.imap(subject_rows, jobs):
            for _, t, v, label, source, session in rows:
                stamp = START + timedelta(minutes=t)
                writer.writerow([subject, stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), int(v), label, source,
                                 session if session >= 0 else ""])
                counts[label] = counts.get(label, 0) + 1
            cgm = sum(1 for r in rows if r[4] == "cgm")
            print(f"{subject}: {cgm} CGM readings, sensor {sensor}", file=sys.stderr)
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
