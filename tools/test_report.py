"""
The end of ``scripts/test.sh``: a table of its parts (time, result) and the 25 slowest tests of all
its pytest runs, read from ``.test-logs/times`` and the JUnit reports ``.test-logs/<part>.xml``.

    python tools/test_report.py .test-logs
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SLOWEST = 25


def parts(logs: Path) -> list[tuple[str, int, int]]:
    """(part, seconds, exit status) in the order the parts ended."""
    rows = []
    for line in (logs / "times").read_text().splitlines():
        name, seconds, status = line.split()
        rows.append((name, int(seconds), int(status)))
    return rows


def slowest(logs: Path, count: int = SLOWEST) -> list[tuple[float, str, str]]:
    """(seconds, part, test) of the slowest test cases, setup and teardown included."""
    cases = []
    for report in sorted(logs.glob("*.xml")):
        for case in ET.parse(report).getroot().iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            cases.append((float(case.get("time") or 0), report.stem, name))
    return sorted(cases, reverse=True)[:count]


def main(argv: list[str]) -> int:
    logs = Path(argv[1] if len(argv) > 1 else ".test-logs")
    print(f"{'part':<28} {'time':>8}  result")
    for name, seconds, status in parts(logs):
        result = "passed" if status == 0 else f"FAILED ({status})"
        print(f"{name:<28} {seconds // 60:>4}:{seconds % 60:02d}  {result}")
    print(f"\n{SLOWEST} slowest tests (all parts):")
    for seconds, part, name in slowest(logs):
        print(f"{seconds:8.1f}s  {part:<26} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
