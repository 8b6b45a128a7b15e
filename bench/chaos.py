"""A seeded chaos run over the whole local chain, compared with a run without faults.

A synthetic slice (``moaa synth``, clearly synthetic) is prepared once, then replayed twice at
tick 0 through feeder → producer → Kafka → stats and forecast jobs → insert job → FerretDB,
with the website up: once without faults, once while a seeded schedule ``kill -9``\\ s one
component every few seconds (every component at least once, the feeder first, at a seeded
point of its replay) and restarts it as users do (``moaa local`` services; the feeder run
again). See ``moaa.localstack.chaos``.

Prints one JSON line (faults injected, records, documents compared, mismatches per
collection, dead letters, the website's answers) and a summary; exits 1 on any mismatch or
if a component was never killed. Usage::

    make chaos                      # or:
    .venv/bin/python bench/chaos.py --stations 20 --days 17 --faults 12 --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from moaa.common.logs import configure_logging
from moaa.dataprep.prepare import prepare
from moaa.dataprep.synth import synthesize
from moaa.localstack.chaos import COMPONENTS, run_chaos

YEAR = 2020


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=20, help="synthetic stations")
    parser.add_argument(
        "--days", type=int, default=17, help="days replayed (forecasts start after 14)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the data and the faults")
    parser.add_argument("--faults", type=int, default=12, help=f"kills (≥ {len(COMPONENTS)})")
    parser.add_argument("--gap", type=float, nargs=2, default=(5.0, 20.0), metavar=("MIN", "MAX"),
                        help="seconds between a restart and the next kill")  # fmt: skip
    parser.add_argument("--malformed-rate", type=float, default=0.01)
    parser.add_argument(
        "--quiet", type=float, default=45.0, help="seconds without a new document = settled"
    )
    parser.add_argument("--work", type=Path, help="work dir (default: a temporary one, removed)")
    args = parser.parse_args()
    configure_logging("INFO", "text", component="chaos")

    with tempfile.TemporaryDirectory(prefix="moaa-chaos-") as tmp:
        work = args.work or Path(tmp)
        raw, dataset = work / "raw", work / "dataset"
        manifest = synthesize(args.stations, YEAR, raw, seed=args.seed,
                              malformed_rate=args.malformed_rate, days=args.days)  # fmt: skip
        prepare(raw, dataset, YEAR)
        start = datetime(YEAR, 1, 1, tzinfo=UTC)
        report = run_chaos(
            dataset, work, YEAR, start + timedelta(hours=manifest["hours"] - 1),
            manifest["hours"], manifest["rows"], seed=args.seed, faults=args.faults,
            gap_s=tuple(args.gap), quiet_s=args.quiet,
        )  # fmt: skip
    print(report.to_json())
    killed = {f["component"] for f in report.faults if f["killed"]}
    print(
        f"chaos: {sum(f['killed'] for f in report.faults)} kills "
        f"({', '.join(sorted(killed))}), {sum(report.restarted_by_themselves.values())} "
        f"restarts of components that ended by themselves; {report.records:,} records, "
        f"{report.documents:,} documents compared, {report.mismatches} mismatches",
        file=sys.stderr,
    )
    for name, c in report.collections.items():
        print(f"  {name:15} {json.dumps(c)}", file=sys.stderr)
    return 0 if report.mismatches == 0 and killed == set(COMPONENTS) else 1


if __name__ == "__main__":
    sys.exit(main())
