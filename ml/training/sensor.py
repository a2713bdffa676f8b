"""CGM sensor model: what a real sensor makes of blood glucose.

simglucose's own sensor adds white-ish Johnson-SU noise to its subcutaneous
glucose. Real sensors differ in ways that decide how forecasts and fault
detectors behave on real people, so each simulated subject gets a sensor
drawn from these behaviours (values from the CGM accuracy literature; the
per-subject ranges are wide on purpose, nothing here is fitted to any data
set):

- physiological lag: interstitial glucose follows blood glucose through a
  first-order lag of 5-15 min;
- error that is autocorrelated and level-dependent: a slow multiplicative
  calibration error (2-7 %, correlation time 1-6 h) plus fast noise whose
  size grows with the level (AR(1), correlation time 3-15 min);
- calibration steps: a third of the sensors are calibrated every ~12 h, when
  the slow error jumps to a new value;
- device filtering: half of the sensors report a causally smoothed value
  (exponential, 2-8 min), which adds delay and removes noise; a quarter
  report raw values; a quarter use simglucose's own noise model;
- quantisation: integer mg/dL, or 0.1 mmol/L for a fifth of the sensors;
  readings clipped to 40-400 mg/dL;
- sensor sessions of ~10 days: a change-over is a 1-2 h warm-up without
  readings, then a first day that reads low (5-15 %, fading) and noisier;
- compression lows (the wearer lies on the sensor) are written into the
  interstitial signal *before* the device filter, so they have the rounded
  edges real ones show (see `faults.compression_attenuation`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simglucose.sensor.noise_gen import CGMNoise

MIN_MG_DL, MAX_MG_DL = 40.0, 400.0
MMOL_STEP_MG_DL = 1.8016
SESSION_MINUTES = 10 * 1440
# Dexcom row of simglucose's sensor_params.csv (the "simglucose" sensor kind).
SIMGLUCOSE_PARAMS = {
    "PACF": 0.7, "gamma": -0.5444, "lambda": 15.9574, "delta": 1.6898,
    "xi": -5.47, "min": MIN_MG_DL, "max": MAX_MG_DL,
}


@dataclass
class Sensor:
    kind: str  # filtered | raw | simglucose
    lag_min: float
    filter_min: float
    slow_sd: float
    slow_tau_min: float
    fast_scale: float
    fast_tau_min: float
    calibrated: bool
    mmol: bool
    session_offset_min: float
    warmup_min: float

    def describe(self) -> str:
        return (f"{self.kind} lag {self.lag_min:.0f} min filter {self.filter_min:.0f} min "
                f"slow {self.slow_sd * 100:.0f}% fast x{self.fast_scale:.2f} "
                f"{'calibrated ' if self.calibrated else ''}{'mmol ' if self.mmol else ''}").strip()


def draw(rng: np.random.Generator, kind: str | None = None) -> Sensor:
    kind = kind or str(rng.choice(["filtered", "raw", "simglucose"], p=[0.5, 0.25, 0.25]))
    return Sensor(
        kind=kind,
        lag_min=float(rng.uniform(5, 15)),
        filter_min=float(rng.uniform(2, 8)) if kind == "filtered" else 0.0,
        slow_sd=float(rng.uniform(0.02, 0.07)),
        slow_tau_min=float(rng.uniform(60, 360)),
        fast_scale=float(rng.uniform(0.5, 1.2)),
        fast_tau_min=float(rng.uniform(3, 15)),
        calibrated=bool(rng.random() < 0.35),
        mmol=bool(rng.random() < 0.2),
        session_offset_min=float(rng.uniform(0, SESSION_MINUTES)),
        warmup_min=float(rng.uniform(60, 120)),
    )


def first_order(signal: np.ndarray, tau_min: float) -> np.ndarray:
    """Causal first-order lag on a 1-minute grid (tau 0 = identity)."""
    if tau_min <= 0:
        return signal.copy()
    alpha = 1.0 - np.exp(-1.0 / tau_min)
    out = np.empty_like(signal)
    acc = signal[0]
    for i, v in enumerate(signal):
        acc += alpha * (v - acc)
        out[i] = acc
    return out


def ar1(n: int, tau_min: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    phi = np.exp(-1.0 / tau_min)
    innovations = rng.normal(0.0, sd * np.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    acc = rng.normal(0.0, sd)
    for i in range(n):
        acc = phi * acc + innovations[i]
        out[i] = acc
    return out


def sessions(sensor: Sensor, minutes: int) -> np.ndarray:
    """Session number per minute (-1 while a new sensor warms up)."""
    t = np.arange(minutes) + sensor.session_offset_min
    number = (t // SESSION_MINUTES).astype(int)
    since_start = t - number * SESSION_MINUTES
    warming = (number > 0) & (since_start < sensor.warmup_min)
    return np.where(warming, -1, number)


def sense(
    bg: np.ndarray,
    attenuation: np.ndarray,
    cadence: int,
    sensor: Sensor,
    rng: np.random.Generator,
    noise_seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads the sensor every `cadence` minutes.

    `attenuation` (mg/dL per minute, >= 0) is pressure on the sensor, applied
    to the interstitial signal. Returns (minutes, values, session per reading,
    attenuation seen through the device filter per reading)."""
    n = len(bg)
    interstitial = first_order(bg, sensor.lag_min)
    session = sessions(sensor, n)
    t = np.arange(n) + sensor.session_offset_min
    since_start = t - (t // SESSION_MINUTES) * SESSION_MINUTES
    # Day-1 effect only for sessions that start inside the recording.
    new_sensor = (t // SESSION_MINUTES) > 0
    day_one = np.where(new_sensor, np.exp(-since_start / 480.0), 0.0)
    day_one_bias = float(rng.uniform(0.05, 0.15))

    if sensor.kind == "simglucose":
        params = dict(SIMGLUCOSE_PARAMS, sample_time=1.0)
        noise = CGMNoise(params, seed=noise_seed)
        fast = np.array([next(noise) for _ in range(n)]) * sensor.fast_scale
    else:
        fast = ar1(n, sensor.fast_tau_min, 1.0, rng) * sensor.fast_scale
        fast *= 2.0 + 0.03 * interstitial  # bigger errors at higher levels
    slow = ar1(n, sensor.slow_tau_min, sensor.slow_sd, rng)
    if sensor.calibrated:
        # At each calibration the slow error restarts from a fresh draw: a step.
        at = 720 + rng.normal(0, 60)
        while at < n:
            i = int(max(at, 0))
            slow[i:] += rng.normal(0.0, sensor.slow_sd) - slow[i]
            at += 720 + rng.normal(0, 60)
    gain = 1.0 + slow - day_one_bias * day_one
    raw = (interstitial - attenuation) * gain + fast * (1.0 + day_one)
    reported = first_order(raw, sensor.filter_min)
    seen_attenuation = first_order(attenuation, sensor.filter_min)

    minutes = np.arange(0, n, cadence)
    keep = session[minutes] >= 0
    minutes = minutes[keep]
    values = reported[minutes]
    if sensor.mmol:
        values = np.round(values / MMOL_STEP_MG_DL, 0) * MMOL_STEP_MG_DL
    values = np.clip(np.round(values), MIN_MG_DL, MAX_MG_DL)
    return minutes, values, session[minutes], seen_attenuation[minutes]
