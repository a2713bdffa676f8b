#!/usr/bin/env python3
"""Train the glyco-ml forecaster and sensor-fault detector; export ONNX.

Inputs are feature files written by the Rust code the hub runs
(`glyco-ml features`), so training and serving compute identical features:

    cargo run -p glyco-ml --features eval -- features --csv ml/data/train.csv --out ml/data/train_features.csv
    cargo run -p glyco-ml --features eval -- features --csv ml/data/validation.csv --out ml/data/validation_features.csv
    ml/.venv/bin/python ml/training/train.py --seed 7

Writes ml/models/{forecaster.onnx, fault_detector.onnx, detector.json,
fixture.json} and the validation figures the model cards quote. Decision
thresholds are chosen on the validation patients only.
"""

from __future__ import annotations

import argparse
import re
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

FEATURE_VERSION = 3
FORECAST_FEATURES = 15
FAULT_FEATURES = 28
DELTA_SCALE = 50.0
# Class 0 must be "none"; the others are the artefacts the detector learns.
# Gaps and clock jumps are timing rules, drift needs a capillary reference.
CLASSES = ["none", "compression_low", "stuck", "spike"]
LOW_RANGE_WEIGHT = 3.0
# Largest share of other readings a class may flag on the validation patients.
FALSE_DETECTION_TARGET = {"compression_low": 0.02, "stuck": 0.004, "spike": 0.003}


def load(path: Path) -> dict[str, np.ndarray]:
    with path.open() as handle:
        header = handle.readline().strip().split(",")
    raw = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=str)
    columns = {name: raw[:, i] for i, name in enumerate(header)}
    def block(prefix: str, count: int) -> np.ndarray:
        return np.stack([columns[f"{prefix}{i}"].astype(np.float32) for i in range(count)], axis=1)
    def optional(name: str) -> np.ndarray:
        return np.array([float(v) if v else np.nan for v in columns[name]], dtype=np.float32)
    return {
        "subject": columns["subject"],
        "label": columns["label"],
        "timing": columns["timing_fault"].astype(int),
        "fc": block("fc", FORECAST_FEATURES),
        "ff": block("ff", FAULT_FEATURES),
        "targets": np.stack([optional("target30"), optional("target60")], axis=1),
    }


def export_mlp(model, scaler: StandardScaler, softmax: bool, path: Path, name: str) -> None:
    """The scaler and MLP as plain ONNX ops (Sub, Div, MatMul, Add, Relu,
    Softmax) that any runtime, tract included, executes."""
    inputs = model.coefs_[0].shape[0]
    initializers = [
        numpy_helper.from_array(scaler.mean_.astype(np.float32), "mean"),
        numpy_helper.from_array(scaler.scale_.astype(np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["h0"]),
    ]
    current = "h0"
    last = len(model.coefs_) - 1
    for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        initializers += [
            numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{i}"),
        ]
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"]))
        out = "logits" if i == last else f"a{i}"
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [out]))
        if i < last:
            nodes.append(helper.make_node("Relu", [out], [f"h{i + 1}"]))
            current = f"h{i + 1}"
    outputs = model.coefs_[-1].shape[1]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["output"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["logits"], ["output"]))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", inputs])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", outputs])],
        initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="glyco-ml train.py")
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    size = path.stat().st_size
    if size > 1_000_000:
        sys.exit(f"{path} is {size} bytes, over the 1 MB budget")


def forward(model, scaler: StandardScaler, x: np.ndarray, softmax: bool) -> np.ndarray:
    """The exported graph in numpy, to check the export against sklearn."""
    h = (x - scaler.mean_.astype(np.float32)) / scaler.scale_.astype(np.float32)
    for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        h = h @ w.astype(np.float32) + b.astype(np.float32)
        if i < len(model.coefs_) - 1:
            h = np.maximum(h, 0)
    if softmax:
        h = np.exp(h - h.max(axis=1, keepdims=True))
        h /= h.sum(axis=1, keepdims=True)
    return h


def train_forecaster(train, validation, seed: int):
    def usable(d):
        mask = np.isfinite(d["targets"]).all(axis=1) & (d["label"] == "none")
        return d["fc"][mask], d["targets"][mask]
    x, y = usable(train)
    xv, yv = usable(validation)
    scaler = StandardScaler().fit(x)
    # Errors near hypoglycaemia matter most: readings whose 30-minute future is
    # below 100 mg/dL weigh LOW_RANGE_WEIGHT times as much.
    future_30 = x[:, 0] * 100.0 + y[:, 0] * DELTA_SCALE
    weights = np.where(future_30 < 100.0, LOW_RANGE_WEIGHT, 1.0)
    model = MLPRegressor(
        hidden_layer_sizes=(64, 64),
        activation="relu",
        alpha=1e-4,
        batch_size=256,
        learning_rate_init=1e-3,
        max_iter=200,
        early_stopping=True,
        n_iter_no_change=10,
        random_state=seed,
    )
    model.fit(scaler.transform(x), y, sample_weight=weights)
    predicted = model.predict(scaler.transform(xv))
    errors = (predicted - yv) * DELTA_SCALE
    metrics = {
        "train_rows": int(len(x)),
        "validation_rows": int(len(xv)),
        "validation_rmse_mg_dl": [float(np.sqrt(np.mean(errors[:, h] ** 2))) for h in range(2)],
        "validation_mae_mg_dl": [float(np.mean(np.abs(errors[:, h]))) for h in range(2)],
        "validation_last_value_rmse_mg_dl": [float(np.sqrt(np.mean((yv[:, h] * DELTA_SCALE) ** 2))) for h in range(2)],
    }
    return model, scaler, metrics


def fit_personal_prior(train, ridge: float = 1.0) -> list[list[float]]:
    """Starting weights of the hub's personal forecaster: a ridge regression
    of the 30- and 60-minute change on the last hour's 12 grid deltas and a
    bias, over the training patients (the population's linear dynamics; each
    hub then adapts them to its patient by recursive least squares)."""
    mask = np.isfinite(train["targets"]).all(axis=1) & (train["label"] == "none")
    x = np.concatenate([train["fc"][mask][:, 1:13], np.ones((int(mask.sum()), 1), np.float32)], axis=1)
    y = train["targets"][mask]
    gram = x.T @ x + ridge * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x.T @ y)  # (13, 2)
    return [[round(float(w), 5) for w in weights[:, h]] for h in range(2)]


def balanced(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Repeats rare classes so each has at least a fifth of the "none" rows'
    weight; without it the MLP learns to answer "none"."""
    parts_x, parts_y = [x], [y]
    none = int(np.sum(y == 0))
    for c in range(1, len(CLASSES)):
        rows = np.flatnonzero(y == c)
        if len(rows) == 0:
            continue
        extra = max(0, none // 5 - len(rows))
        pick = rng.choice(rows, size=extra, replace=True)
        parts_x.append(x[pick])
        parts_y.append(y[pick])
    return np.concatenate(parts_x), np.concatenate(parts_y)


def train_fault_detector(train, validation, seed: int):
    def usable(d):
        # Timing faults are rules; drift is invisible without a reference, so
        # drift readings are "none" to the learned detector.
        mask = d["timing"] == 0
        labels = np.array([CLASSES.index(l) if l in CLASSES else 0 for l in d["label"]])
        return d["ff"][mask], labels[mask]
    x, y = usable(train)
    xv, yv = usable(validation)
    rng = np.random.default_rng(seed)
    xb, yb = balanced(x, y, rng)
    scaler = StandardScaler().fit(x)
    model = MLPClassifier(
        hidden_layer_sizes=(64, 64),
        activation="relu",
        alpha=1e-2,
        batch_size=256,
        learning_rate_init=1e-3,
        max_iter=200,
        early_stopping=True,
        n_iter_no_change=10,
        random_state=seed,
    )
    model.fit(scaler.transform(xb), yb)
    probabilities = model.predict_proba(scaler.transform(xv))
    thresholds, metrics = {}, {"train_rows": int(len(x)), "validation_rows": int(len(xv)), "classes": {}}
    for c, name in enumerate(CLASSES[1:], start=1):
        p = probabilities[:, c]
        is_class = yv == c
        others = max(1, int(np.sum(~is_class)))
        chosen = 0.99
        for threshold in np.arange(0.10, 0.995, 0.01):
            if np.sum((p >= threshold) & ~is_class) / others <= FALSE_DETECTION_TARGET[name]:
                chosen = float(threshold)
                break
        flagged = p >= chosen
        tp = int(np.sum(flagged & is_class))
        thresholds[name] = round(chosen, 2)
        metrics["classes"][name] = {
            "threshold": round(chosen, 2),
            "validation_readings": int(np.sum(is_class)),
            "validation_recall": tp / max(1, int(np.sum(is_class))),
            "validation_precision": tp / max(1, int(np.sum(flagged))),
            "validation_false_detection_rate": float(np.sum(flagged & ~is_class) / others),
        }
    return model, scaler, thresholds, metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--train", type=Path, default=root / "data" / "train_features.csv")
    parser.add_argument("--validation", type=Path, default=root / "data" / "validation_features.csv")
    parser.add_argument("--models", type=Path, default=root / "models")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only-subjects", default="",
                        help="regular expression: train and validate only on matching subjects "
                             "(cross-population checks, e.g. '^(adult|adolescent)-' or '-5min$')")
    args = parser.parse_args()

    train, validation = load(args.train), load(args.validation)
    if args.only_subjects:
        pattern = re.compile(args.only_subjects)
        train, validation = (
            {k: v[np.array([bool(pattern.search(s)) for s in d["subject"]])] for k, v in d.items()}
            for d in (train, validation)
        )
        print(f"only subjects matching {args.only_subjects!r}: {len(train['label'])} training rows",
              file=sys.stderr)
    args.models.mkdir(parents=True, exist_ok=True)

    forecaster, f_scaler, f_metrics = train_forecaster(train, validation, args.seed)
    export_mlp(forecaster, f_scaler, False, args.models / "forecaster.onnx", "glyco_forecaster")
    detector, d_scaler, thresholds, d_metrics = train_fault_detector(train, validation, args.seed)
    export_mlp(detector, d_scaler, True, args.models / "fault_detector.onnx", "glyco_fault_detector")

    # The export must compute what sklearn computes.
    sample_fc = validation["fc"][:: max(1, len(validation["fc"]) // 5)][:5]
    sample_ff = validation["ff"][:: max(1, len(validation["ff"]) // 5)][:5]
    fc_out = forward(forecaster, f_scaler, sample_fc, False)
    ff_out = forward(detector, d_scaler, sample_ff, True)
    assert np.allclose(fc_out, forecaster.predict(f_scaler.transform(sample_fc)), atol=1e-4)
    assert np.allclose(ff_out, detector.predict_proba(d_scaler.transform(sample_ff)), atol=1e-4)

    config = {
        "feature_version": FEATURE_VERSION,
        "forecaster": {"file": "forecaster.onnx", "inputs": FORECAST_FEATURES},
        "fault_detector": {
            "file": "fault_detector.onnx",
            "inputs": FAULT_FEATURES,
            "classes": CLASSES,
            "thresholds": thresholds,
        },
        # Measured and chosen on the validation patients afterwards by
        # `glyco-ml tune`; until then these starting values let the models load.
        "combination": {
            "shrinkage": 1.0,
            "prior_error_moments": [
                [[225.0 if i == j else 0.0 for j in range(5)] for i in range(5)],
                [[625.0 if i == j else 0.0 for j in range(5)] for i in range(5)],
            ],
            "prior_combined_rmse_mg_dl": [15.0, 25.0],
            "prior_weight": 50.0,
            "forgetting": 0.002,
        },
        "predicted_low": {"probability": 0.3, "below_mg_dl": 70.0},
        "personal_prior": fit_personal_prior(train),
    }
    (args.models / "detector.json").write_text(json.dumps(config, indent=2) + "\n")
    fixture = {
        "forecaster": {"inputs": sample_fc.tolist(), "outputs": fc_out.tolist()},
        "fault_detector": {"inputs": sample_ff.tolist(), "outputs": ff_out.tolist()},
    }
    (args.models / "fixture.json").write_text(json.dumps(fixture) + "\n")
    summary = {"seed": args.seed, "forecaster": f_metrics, "fault_detector": d_metrics}
    (args.models / "training_metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    for name in ("forecaster.onnx", "fault_detector.onnx"):
        print(f"{name}: {(args.models / name).stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
