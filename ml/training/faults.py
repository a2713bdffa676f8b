"""Sensor-fault injector: writes labelled artefacts into a clean CGM trace.

simglucose models sensor noise but no failures, so the faults real CGMs show
are written here, each labelled per reading:

- compression_low  the wearer lies on the sensor (written into the
                   interstitial signal by `compression_attenuation`, before
                   the sensor's own filter; see sensor.py).
- stuck            the transmitter repeats its last value for 30-120 min.
- spike            one (at 1-min cadence up to three) wild readings.
- drift            a calibration error that grows over 4-12 h to 30-60 mg/dL
                   and vanishes at the next calibration; labelled where it
                   exceeds 20 mg/dL.
- gap              readings lost for 20-180 min; the first reading after the
                   hole carries the label.
- clock_jump       the device clock moves by +-10 min to +-4 h (time-zone or
                   daylight-saving change, a reset); the first reading on the
                   new clock carries the label, and later readings keep it.

Episodes never overlap, so each reading has one label.
"""

from __future__ import annotations

import numpy as np

NONE = "none"
DAY = 1440.0

# Expected episodes per simulated day (compression lows are per night).
RATES = {
    "drift": 0.25,
    "stuck": 0.4,
    "spike": 1.5,
    "gap": 0.8,
    "clock_jump": 0.25,
}


def _free(labels: list[str], start: int, stop: int, margin: int) -> bool:
    lo, hi = max(0, start - margin), min(len(labels), stop + margin)
    return hi > lo and all(label == NONE for label in labels[lo:hi])


def _pick(
    times: np.ndarray,
    labels: list[str],
    rng: np.random.Generator,
    duration: float,
    cadence: int,
    window: tuple[float, float] | None = None,
) -> tuple[int, int] | None:
    """A free run of readings lasting `duration` minutes, optionally starting
    within an absolute (first, last) minute window; None after a few tries."""
    margin = max(2, int(30 / cadence))
    for _ in range(30):
        if window is None:
            start_t = rng.uniform(times[0], max(times[0] + 1, times[-1] - duration))
        else:
            start_t = rng.uniform(max(window[0], times[0]), max(window[1], times[0] + 1))
        start = int(np.searchsorted(times, start_t))
        stop = int(np.searchsorted(times, start_t + duration))
        if stop - start >= 1 and stop <= len(times) and _free(labels, start, stop, margin):
            return start, stop
    return None


def compression_attenuation(
    level: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pressure on the sensor, on the 1-minute grid of the interstitial
    signal `level`: (attenuation in mg/dL, shape 0..1) per minute.

    Real compression lows (Mensh et al. 2013, Baysal et al. 2014) fall fast
    but not as a straight line: the signal approaches a plateau 30-70 %
    below the true level with a time constant of 2-8 min, wanders on the
    plateau for 15-120 min, and comes back with a time constant of 3-12 min,
    sometimes overshooting the true level for a while. 85 % happen in bed.
    """
    n = len(level)
    attenuation = np.zeros(n)
    shape = np.zeros(n)
    busy_until = -1
    for night in range(int(np.ceil(n / DAY)) + 1):
        for chance in (0.8, 0.3):
            if rng.random() >= chance:
                continue
            if rng.random() < 0.85:
                start = night * DAY - 60 + rng.uniform(0, 420)
            else:
                start = night * DAY + rng.uniform(780, 960)
            start = int(start)
            fall_tau, hold = rng.uniform(2, 8), rng.uniform(15, 120)
            rise_tau = rng.uniform(3, 12)
            length = int(hold + 5 * rise_tau + 30)
            if start < 60 or start + length >= n or start <= busy_until:
                continue
            busy_until = start + length + 60
            depth = max(30.0, rng.uniform(0.3, 0.7) * level[start])
            depth = min(depth, level[start] - 30.0)
            if depth < 20.0:
                continue
            overshoot = rng.uniform(0.05, 0.15) * level[start] if rng.random() < 0.4 else 0.0
            wander = 1.0 + 0.1 * np.sin(np.arange(length) / rng.uniform(8, 25) + rng.uniform(0, 6))
            at_release = 1.0 - np.exp(-hold / fall_tau)
            for k in range(length):
                if k < hold:
                    s = 1.0 - np.exp(-k / fall_tau)
                else:
                    s = at_release * np.exp(-(k - hold) / rise_tau)
                i = start + k
                shape[i] = s
                attenuation[i] = depth * s * wander[k]
                if k >= hold:
                    attenuation[i] -= overshoot * (1 - s / at_release) * np.exp(-(k - hold) / 15.0)
            attenuation[start:start + length] = np.minimum(
                attenuation[start:start + length], level[start:start + length] - 20.0)
    return attenuation, shape


def _drift(times, values, labels, cadence, rng, count) -> None:
    for _ in range(count):
        length = rng.uniform(240, 720)
        found = _pick(times, labels, rng, length, cadence)
        if found is None:
            continue
        start, stop = found
        bias_end = rng.uniform(30, 60) * rng.choice([-1.0, 1.0])
        for i in range(start, stop):
            bias = bias_end * (times[i] - times[start]) / length
            values[i] = float(np.clip(round(values[i] + bias), 40, 400))
            if abs(bias) >= 20:
                labels[i] = "drift"


def _stuck(times, values, labels, cadence, rng, count) -> None:
    for _ in range(count):
        found = _pick(times, labels, rng, rng.uniform(30, 120), cadence)
        if found is None or found[1] - found[0] < 2:
            continue
        start, stop = found
        for i in range(start + 1, stop):
            values[i] = values[start]
            labels[i] = "stuck"


def _spikes(times, values, labels, cadence, rng, count) -> None:
    for _ in range(count):
        width = int(rng.integers(1, 4)) if cadence == 1 else 1
        found = _pick(times, labels, rng, width * cadence - 0.5, cadence)
        if found is None:
            continue
        start, _ = found
        jump = rng.uniform(40, 120) * (1.0 if rng.random() < 0.7 else -1.0)
        for i in range(start, min(start + width, len(values))):
            values[i] = float(np.clip(round(values[i] + jump), 40, 400))
            labels[i] = "spike"


def _gaps(times, labels, cadence, rng, count) -> np.ndarray:
    keep = np.ones(len(times), dtype=bool)
    for _ in range(count):
        length = max(rng.uniform(20, 180), 2.5 * cadence)
        found = _pick(times, labels, rng, length, cadence)
        if found is None or found[1] >= len(times):
            continue
        start, stop = found
        keep[start:stop] = False
        for i in range(start, stop):
            labels[i] = "removed"
        labels[stop] = "gap"
    return keep


def _clock_jumps(times, labels, cadence, rng, count) -> np.ndarray:
    shift = np.zeros(len(times))
    for _ in range(count):
        found = _pick(times, labels, rng, cadence, cadence)
        if found is None:
            continue
        start, _ = found
        if rng.random() < 0.4:
            jump = 60.0 * rng.choice([-1.0, 1.0])
        else:
            jump = rng.uniform(10, 240) * rng.choice([-1.0, 1.0])
        shift[start:] += jump
        labels[start] = "clock_jump"
    return shift


def inject(
    times: np.ndarray,
    values: np.ndarray,
    cadence: int,
    rng: np.random.Generator,
    labels: list[str] | None = None,
) -> list[tuple[float, float, float, str]]:
    """Faults written into one subject's trace; `labels` holds what is
    already there (compression lows come from the sensor model).

    Returns (true minute, reported minute, value, label) per kept reading, in
    the order the sensor produced them."""
    values = values.astype(float).copy()
    labels = list(labels) if labels is not None else [NONE] * len(times)
    days = max(times[-1] / DAY, 0.25)

    def count(kind: str) -> int:
        return int(rng.poisson(RATES[kind] * days))

    _drift(times, values, labels, cadence, rng, count("drift"))
    _stuck(times, values, labels, cadence, rng, count("stuck"))
    _spikes(times, values, labels, cadence, rng, count("spike"))
    keep = _gaps(times, labels, cadence, rng, count("gap"))
    shift = _clock_jumps(times, labels, cadence, rng, count("clock_jump"))
    return [
        (float(times[i]), float(times[i] + shift[i]), float(values[i]), labels[i])
        for i in range(len(times))
        if keep[i]
    ]
