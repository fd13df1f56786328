"""The web console's files: a page, its script and style, and the editor bundle.

Everything the console needs ships in ``static/`` (no CDN: nothing leaves the machine).
``static/editor.js`` is built from ``console/`` at the repository's root (CodeMirror 6
and esbuild, exact versions in its lock file) and committed, so serving needs no Node.
The routes are in `coderunner._http_console`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["static_dir", "static_files"]


def static_dir() -> Path:
    """The directory of the console's static files."""
    return Path(__file__).resolve().parent / "static"


def static_files() -> list[str]:
    """The names of the console's static files (flat: no subdirectories)."""
    return sorted(p.name for p in static_dir().iterdir() if p.is_file())
