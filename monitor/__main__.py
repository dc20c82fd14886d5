"""`python -m monitor`: the same command line as `conscent-monitor`."""

from __future__ import annotations

from monitor.cli import main

if __name__ == "__main__":
    main()
