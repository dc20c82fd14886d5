"""Where the files that ship with the program live (wheel or source tree)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    # An installed wheel carries them inside the package; a source checkout
    # (editable install, tests) keeps them at the top of the repository.
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{name}/ is missing from this installation")


def styles_dir() -> Path:
    return _find("styles")


def sample_events_dir() -> Path:
    return _find("sample_events")
