"""The web console's routes: the page at `GET /` and its assets under `/console/`.

The page and its assets need no API key (they hold no data; the page asks for the key
and sends it with its API calls), so their exact paths are in `CONSOLE_PATHS`, which
`coderunner._http` adds to the guard's open paths.  The page's Content-Security-Policy
allows only this origin: the console never loads or sends anything elsewhere.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from ._console import static_dir, static_files

__all__ = ["CONSOLE_PATHS", "add_console_routes"]

# Open without an API key: the page and each of its files (exact paths, nothing else).
CONSOLE_PATHS = frozenset({"/", *(f"/console/{name}" for name in static_files())})

_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _ConsoleFiles(StaticFiles):
    """The console's assets, revalidated on every load (cheap: ETag), so that a new
    version of the service never runs with an old script."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def add_console_routes(app: FastAPI) -> None:
    """`GET /` (the console's page) and `/console/*` (its script, style and editor)."""
    index = static_dir() / "index.html"

    @app.get("/", include_in_schema=False)
    async def console_page() -> FileResponse:
        """The web console."""
        return FileResponse(index, media_type="text/html", headers=_PAGE_HEADERS)

    app.mount("/console", _ConsoleFiles(directory=static_dir()), name="console")
