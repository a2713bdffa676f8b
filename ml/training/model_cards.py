#!/usr/bin/env python3
"""Write the model cards ml/models/{forecaster,fault_detector}.md from the
training metrics (train.py) and the held-out evaluation table (glyco-ml eval):

    cargo run --release -p glyco-ml --features eval -- eval --out ml/models/eval_table.md
    ml/.venv/bin/python ml/training/model_cards.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import splits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"

COMMON = """## Data

UVA/Padova simulator (simglucose 0.2.11, MIT): its 30 virtual patients and a
perturbed copy of each (meal absorption, carb ratio, eating habits), driven by
`ml/training/generate.py` (meals, therapy errors, rescue carbohydrate) and
read through the sensor model of `ml/training/sensor.py` (5-15 min lag,
autocorrelated level-dependent error, calibration steps, device filtering,
mmol/L quantisation, sensor change-overs, compression lows of real shape;
1/3/5/15-minute sensors), with other sensor faults written in by
`ml/training/faults.py`. Seed {seed}.

| split | patients | days each | use |
|---|---|---|---|
| train | {train} (and perturbed copies) | 4 | fitting |
| validation | {validation} (and perturbed copies) | 4 (train.py), 14 (glyco-ml tune) | decision thresholds, settings |
| evaluation | {evaluation} | 4 | the table below only; never trained or tuned on |

Reproduce: the commands in docs/ML.md ("Commands"). Features are computed by
the Rust crate (`glyco-ml features`, feature version {feature_version}), the
same code the hub runs.
"""


def main() -> int:
    metrics = json.loads((MODELS / "training_metrics.json").read_text())
    config = json.loads((MODELS / "detector.json").read_text())
    table_path = MODELS / "eval_table.md"
    table = table_path.read_text() if table_path.exists() else "(run glyco-ml eval --out ml/models/eval_table.md)\n"
    common = COMMON.format(
        seed=metrics["seed"],
        train=", ".join(splits.SPLITS["train"]),
        validation=", ".join(splits.SPLITS["validation"]),
        evaluation=", ".join(splits.SPLITS["eval"]),
        feature_version=config["feature_version"],
    )
    f = metrics["forecaster"]
    size = (MODELS / "forecaster.onnx").stat().st_size
    forecaster = f"""# Model card: glucose forecaster (`forecaster.onnx`)

Predicts the change of CGM glucose 30 and 60 minutes ahead from the last hour
of readings. On the hub it is one of five forecasters in a per-patient
minimum-variance combination (with AR2, the last value, a damped trend and a
personal linear model learned on the hub; docs/ML.md), whose forecast drives
the `PredictedLow` (probability of glucose below
{config["predicted_low"]["below_mg_dl"]:.0f} mg/dL in 30 minutes at least
{config["predicted_low"]["probability"]:.2f}, on two consecutive readings) and
`PredictedHigh` (60-minute forecast above 250 mg/dL) findings. The table's
"learned model alone" column is this model by itself.

- Model: scikit-learn MLPRegressor, 2 hidden layers of 64 ReLU units, inputs
  standardised inside the graph; squared error, readings whose 30-minute
  future is below 100 mg/dL weighted x3; early stopping. ONNX opset 13,
  {size} bytes.
- Inputs (15): glucose / 100; (glucose 5, 10, ..., 60 minutes ago - now) / 50
  read off a 5-minute grid by interpolation; grid coverage; sensor cadence /
  15 min. Outputs (2): change at +30 and +60 minutes / 50.
- Training rows: {f["train_rows"]} clean readings with known future;
  validation rows: {f["validation_rows"]}.
- Validation RMSE: {f["validation_rmse_mg_dl"][0]:.1f} mg/dL at 30 min,
  {f["validation_rmse_mg_dl"][1]:.1f} at 60 min (last value:
  {f["validation_last_value_rmse_mg_dl"][0]:.1f} and
  {f["validation_last_value_rmse_mg_dl"][1]:.1f}); MAE
  {f["validation_mae_mg_dl"][0]:.1f} and {f["validation_mae_mg_dl"][1]:.1f}.
- Not for: insulin dosing. Real patients differ from virtual ones; check with
  `glyco-ml eval --csv` on your own data first.

{common}
## Held-out evaluation (glyco-ml eval)

{table}"""
    (MODELS / "forecaster.md").write_text(forecaster)

    d = metrics["fault_detector"]
    rows = "\n".join(
        f"| {name} | {c['threshold']:.2f} | {c['validation_readings']} | {c['validation_precision']:.1%} | "
        f"{c['validation_recall']:.1%} | {c['validation_false_detection_rate']:.2%} |"
        for name, c in d["classes"].items()
    )
    size = (MODELS / "fault_detector.onnx").stat().st_size
    detector = f"""# Model card: sensor-fault detector (`fault_detector.onnx`)

Classifies each CGM reading as none, compression_low, stuck or spike from the
readings before it (causal: usable in streaming). Gaps, clock jumps, drift and
sensor-reported errors are rules in the monitor, not this model.

- Model: scikit-learn MLPClassifier, 2 hidden layers of 64 ReLU units, softmax
  output, inputs standardised inside the graph; rare classes repeated to a
  fifth of the "none" rows; early stopping. ONNX opset 13, {size} bytes.
- Inputs (28): glucose; minutes since the previous reading; rate to the
  previous reading and the one before; jump off the two-reading trend; run of
  identical values (minutes, count); median absolute rate over the last hour;
  distance to the hour's maximum and minimum; grid coverage; cadence; the 12
  grid differences of the last hour; the steepest 15-minute fall of the hour
  (size, age, share of the level, still down or not).
- Per-class thresholds chosen on the validation patients for a
  false-detection budget on the raw model output (compression low 2 %, of
  which the guards below remove about half; stuck 0.4 %; spike 0.3 %):

| class | threshold | validation readings | precision | recall | false detections |
|---|---:|---:|---:|---:|---:|
{rows}

- In the monitor (and so in the evaluation below) two guards and a hysteresis
  act on its output: no compression low without a 15-minute fall of at least
  25 mg/dL, no stuck sensor without a repeated value, and a found compression
  low stays flagged while the value stays at least 15 % (10 mg/dL) below the
  level it fell from and the probability stays at 0.2 or more (at most 2 hours).
- Training rows: {d["train_rows"]}; validation rows: {d["validation_rows"]}.

{common}
## Held-out evaluation (glyco-ml eval)

{table}"""
    (MODELS / "fault_detector.md").write_text(detector)
    print("wrote forecaster.md and fault_detector.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
