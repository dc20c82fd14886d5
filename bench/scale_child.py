"""Entry of bench/scale.py's child process: this checkout's harness over any tree's ``monitor``.

    python bench/scale_child.py --tree /tmp/s16/base --db X.db --part filters --cases C.json

The harness (``bench``) is imported from this checkout first; then ``--tree``
goes first on ``sys.path``, so ``import monitor`` is that tree's (checked).
``-m bench.scale`` with PYTHONPATH could not do it: the other tree has a
``bench`` package of its own.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    argv = sys.argv[1:]
    tree = Path(argv[argv.index("--tree") + 1]).resolve()
    here = str(ROOT / "bench")
    sys.path[:] = [p for p in sys.path if p != here]  # the script's directory: no bare module names from it
    sys.path.insert(0, str(ROOT))
    import bench.scale  # the harness from this checkout (its submodules follow its package)

    sys.path.remove(str(ROOT))
    sys.path.insert(0, str(tree))
    import monitor

    where = Path(monitor.__file__).resolve()
    if not where.is_relative_to(tree):
        raise SystemExit(f"monitor imported from {where}, not from {tree}")
    bench.scale._T0 = _T0
    bench.scale.child(argv, str(where.parent))


if __name__ == "__main__":
    main()
