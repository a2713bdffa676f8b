"""Checks glyco-report's AGP figures against GlucoStats (PyPI, URJC 2025)
and pandas on the same CGM data.

Usage: agp_check.py <readings.csv> <ours.json>
The CSV has `time_ms,mg_dl,minute_of_day` rows (integer mg/dL, as CGMs
report them); the JSON is glyco-report's AgpReport. Exits non-zero with the
differences if any figure disagrees.
"""
import json
import sys

import pandas as pd
from glucostats.stats.control_stats import a1c_estimation
from glucostats.stats.observations_stats import percentage_observations_in_ranges
from glucostats.stats.variability_stats import glucose_variability


def main(csv_path, json_path):
    rows = pd.read_csv(csv_path)
    ours = json.load(open(json_path))
    times = pd.to_datetime(rows["time_ms"], unit="ms").to_numpy()
    values = rows["mg_dl"].astype(float).to_numpy()
    # GlucoStats takes several signals, one id each; with a single signal
    # its groupby-apply turns the result sideways, so a second, shorter
    # signal rides along and only the patient's row is read.
    frame = pd.concat(
        [
            pd.DataFrame({"time": times, "glucose": values}, index=pd.Index(["patient"] * len(values))),
            pd.DataFrame(
                {"time": times[:-1], "glucose": values[:-1]},
                index=pd.Index(["companion"] * (len(values) - 1)),
            ),
        ]
    )
    # GlucoStats bins are right-closed (0, a], (a, b], (b, max]: with integer
    # values, [69, 180] splits at < 70 / 70-180 / > 180 and [53, 250] at
    # < 54 / ... / > 250, the consensus limits.
    wide = percentage_observations_in_ranges(frame, [69, 180]).loc["patient"]
    narrow = percentage_observations_in_ranges(frame, [53, 250]).loc["patient"]
    theirs = {
        "very_low": narrow["pn_br"],
        "low": wide["pn_br"] - narrow["pn_br"],
        "in_range": wide["pn_ir"],
        "high": wide["pn_ar"] - narrow["pn_ar"],
        "very_high": narrow["pn_ar"],
        "mean_mg_dl": values.mean(),
        "gmi_percent": a1c_estimation(frame).loc["patient", "gmi"],
        "cv_percent": glucose_variability(frame).loc["patient", "cv"],
    }
    metrics = ours["metrics"]
    mine = dict(metrics["ranges"])
    mine.update({k: metrics[k] for k in ("mean_mg_dl", "gmi_percent", "cv_percent")})
    problems = []
    for name, value in theirs.items():
        if abs(float(value) - mine[name]) > 1e-6 * max(1.0, abs(float(value))):
            problems.append(f"{name}: glyco {mine[name]!r}, GlucoStats {float(value)!r}")

    # Percentiles by 15-minute bin of local time, with pandas' quantile
    # (linear interpolation, numpy's default).
    rows["bin"] = rows["minute_of_day"] // 15 * 15
    grouped = rows.groupby("bin")["mg_dl"]
    bands = {band["minute"]: band for band in ours["bands"]}
    if set(bands) != set(grouped.groups):
        problems.append(f"bins differ: {sorted(set(bands) ^ set(grouped.groups))[:5]}")
    for q, key in ((0.05, "p5"), (0.25, "p25"), (0.5, "p50"), (0.75, "p75"), (0.95, "p95")):
        expected = grouped.quantile(q)
        for minute, value in expected.items():
            got = bands.get(minute, {}).get(key)
            if got is None or abs(got - value) > 1e-9:
                problems.append(f"{key} at minute {minute}: glyco {got!r}, pandas {value!r}")
                break
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(
        f"agp figures agree with GlucoStats and pandas: {len(rows)} readings, "
        f"{len(bands)} bins, TIR {mine['in_range']:.2f} %, GMI {mine['gmi_percent']:.3f} %"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
