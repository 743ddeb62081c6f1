#!/usr/bin/env python3
"""Per-kernel time from Nsight Compute's raw CSV (ncu --csv --page raw --print-units base): count,
total and mean microseconds, share of the total, and DRAM read speed where the CSV has the counter.
Used by bench/gpu_profile.sh (one decode step's kernels, told apart by grid) and
bench/gpu_profile_serve.sh (a server's prompt passes, by name only)."""
import argparse
import collections
import csv
import io
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except (AttributeError, ValueError):
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv")
    parser.add_argument("--by-name", action="store_true", help="group by kernel name only, not name and grid")
    parser.add_argument("--last", type=float, default=1.0,
                        help="keep only this share of the launches, the last ones (e.g. 0.5 leaves out a warm-up)")
    args = parser.parse_args()
    text = open(args.csv).read()
    if '"ID"' not in text:
        sys.exit(f"no kernel was profiled: see the log beside {args.csv}")
    text = text[text.index('"ID"'):]  # the program's own output comes first
    rows = [r for r in csv.DictReader(io.StringIO(text))
            if r.get("Kernel Name") and number(r.get("gpu__time_duration.sum")) is not None]
    rows = rows[int(len(rows) * (1.0 - args.last)):]
    totals, read_bytes, counts = collections.defaultdict(float), collections.defaultdict(float), collections.Counter()
    for r in rows:
        # Decode's GEMVs of Q/K/V, o_proj, gate/up and down share a name and differ in grid.
        name = r["Kernel Name"].split("(")[0][:40]
        if not args.by_name:
            name += " grid " + r.get("Grid Size", "?")
        totals[name] += number(r["gpu__time_duration.sum"]) / 1e3
        read_bytes[name] += number(r.get("dram__bytes_read.sum", "0")) or 0.0
        counts[name] += 1
    overall = sum(totals.values())
    print(f"{len(rows)} launches, {overall / 1e3:.1f} ms")
    print(f"{'kernel':<56}{'count':>6}{'total us':>11}{'mean us':>9}{'share':>7}{'GB/s':>7}")
    for name, total in sorted(totals.items(), key=lambda item: -item[1]):
        # Time-only runs (FAST=1) read no DRAM counter: no figure rather than 0 GB/s.
        read_speed = f"{read_bytes[name] / total / 1e3:>7.0f}" if read_bytes[name] else f"{'n/a':>7}"
        print(f"{name:<56}{counts[name]:>6}{total:>11.1f}{total / counts[name]:>9.2f}{total / overall:>7.1%}{read_speed}")


if __name__ == "__main__":
    main()
