#!/usr/bin/env python3
"""Regenerate tests/fixtures/hosts/<scenario>/expected.json from the current build.

    python tests/update_golden.py            # every scenario
    python tests/update_golden.py psi-disabled linux-6.8-full

Read the diff before committing it: a golden records what the core *should* say about a fixture;
regenerating one to make a failing test pass hides the bug it caught."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden import dumps, expected_path, golden_samples  # noqa: E402
from helpers import scenarios  # noqa: E402


def main(argv: list[str]) -> int:
    roots = scenarios()
    if argv:
        wanted = set(argv)
        unknown = wanted - {r.name for r in roots}
        if unknown:
            print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        roots = [r for r in roots if r.name in wanted]
    if not roots:
        print("no fixture scenarios under tests/fixtures/hosts/", file=sys.stderr)
        return 1
    for root in roots:
        path = expected_path(root)
        new = dumps(golden_samples(root))
        old = path.read_text() if path.exists() else None
        if new != old:
            path.write_text(new)
            print(f"{'updated' if old is not None else 'created'} {path}")
        else:
            print(f"unchanged {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
