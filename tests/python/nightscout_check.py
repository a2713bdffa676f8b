"""Reads the hub's Nightscout API with py-nightscout (PyPI), an independent
Nightscout client, and prints what it got as JSON for the Rust test.

Usage: nightscout_check.py <base url> <api secret>
"""
import asyncio
import json
import sys

import py_nightscout as nightscout


async def main(url, secret):
    api = nightscout.Api(url, api_secret=secret)
    status = await api.get_server_status()
    sgvs = await api.get_sgvs()
    refused = None
    try:
        await nightscout.Api(url, api_secret="not-the-secret").get_sgvs()
    except Exception as e:  # aiohttp raises ClientResponseError on 401
        refused = getattr(e, "status", str(e))
    print(
        json.dumps(
            {
                "status": status.status,
                "name": status.name,
                "units": (status.settings or {}).get("units"),
                "sgvs": [
                    {
                        "sgv": s.sgv,
                        "sgv_mmol": s.sgv_mmol,
                        "delta": s.delta,
                        "direction": s.direction,
                        "date": s.date.isoformat(),
                        "device": s.device,
                    }
                    for s in sgvs
                ],
                "wrong_secret": refused,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
