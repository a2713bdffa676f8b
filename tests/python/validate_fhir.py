"""Validates a FHIR R4 Bundle with fhir.resources (an independent
implementation of the FHIR models), and prints what it found.

Usage: validate_fhir.py BUNDLE.json
Exit 0 and one summary line when valid; a validation error otherwise.
"""
import json
import sys

from fhir.resources.R4B.bundle import Bundle

with open(sys.argv[1], encoding="utf-8") as f:
    data = json.load(f)
bundle = Bundle.model_validate(data)
codes = {}
for entry in bundle.entry or []:
    obs = entry.resource
    assert obs.__resource_type__ == "Observation", obs.__resource_type__
    code = obs.code.coding[0]
    assert code.system == "http://loinc.org", code.system
    if obs.valueQuantity is not None:
        assert obs.valueQuantity.system == "http://unitsofmeasure.org"
    for comp in obs.component or []:
        assert comp.valueQuantity.system == "http://unitsofmeasure.org"
    codes[code.code] = codes.get(code.code, 0) + 1
print("valid", bundle.type, len(bundle.entry or []), json.dumps(codes, sort_keys=True))
