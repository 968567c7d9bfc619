"""A stand-in for the retry worker that exits at once, as a broken worker would."""

raise SystemExit(3)
