"""Run every benchmark in turn: ``python -m kg_reward.benchmarks``."""

from __future__ import annotations

import sys

from kg_reward.benchmarks import extraction, service


def main() -> int:
    status = extraction.main()
    status = service.main() or status
    return status


if __name__ == "__main__":
    sys.exit(main())
