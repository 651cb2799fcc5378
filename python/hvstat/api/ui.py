"""The dashboard's routes: ``/`` and the static files under ``/ui/`` (python/hvstat/web/).

- ``GET /`` answers by the Accept header: a browser (``text/html`` preferred over JSON) gets the
  dashboard; anything else (curl's ``*/*``, ``application/json``, scripts) gets the JSON index it
  always got (app.py's). ``Vary: Accept`` tells caches the two apart. ``GET /api`` is the JSON
  index always.
- ``GET /ui/<file>``: the dashboard's files, read once at startup into memory from the package's
  ``web/`` folder. A request names a file of that fixed set or gets a 404: nothing from the URL is
  ever joined into a filesystem path. Each answer has an explicit content type (ES modules need a
  JavaScript one), a strong ETag, and ``Cache-Control: no-cache``: the browser keeps its copy and
  revalidates it (a 304, no body) on every load, so an upgraded hvstat is never served stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hvstat.api.responses import ApiError

Endpoint = Callable[[Request], Awaitable[Response]]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The page loads nothing but its own files, and talks to nothing but its own origin (REST and /ws).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
COMMON_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(root: Path = WEB_DIR) -> dict[str, Asset]:
    """Every file of ``root`` with a known type, by name."""
    assets = {}
    if root.is_dir():
        for p in sorted(root.iterdir()):
            ctype = CONTENT_TYPES.get(p.suffix)
            if p.is_file() and ctype is not None:
                body = p.read_bytes()
                assets[p.name] = Asset(body, ctype, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return assets


ASSETS = load_assets()


def _serve(request: Request, asset: Asset, extra: dict[str, str] | None = None) -> Response:
    headers = {**COMMON_HEADERS, "ETag": asset.etag, **(extra or {})}
    if asset.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CSP
    inm = request.headers.get("if-none-match")
    if inm is not None and asset.etag in (t.strip() for t in inm.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


def _wants_html(request: Request) -> bool:
    """True when the client ranks text/html above application/json (browsers do; curl sends */*)."""
    best_html = best_json = 0.0
    for part in request.headers.get("accept", "").split(","):
        kind, *params = (x.strip() for x in part.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if kind == "text/html":
            best_html = max(best_html, q)
        elif kind == "application/json":
            best_json = max(best_json, q)
    return best_html > 0 and best_html >= best_json


def make_routes(json_index: Endpoint) -> list[Route]:
    """``/`` (the dashboard or ``json_index``, by Accept), ``/api`` (``json_index``) and ``/ui/<file>``.
    The JSON index itself stays with the routing table in app.py, which knows every endpoint."""

    async def root(request: Request) -> Response:
        if not _wants_html(request):
            response = await json_index(request)
            response.headers["Vary"] = "Accept"
            return response
        # Query parameters are the page's own (?range=...), read by app.js.
        asset = ASSETS.get("index.html")
        if asset is None:
            raise ApiError(404, "the dashboard is not installed", {"dir": str(WEB_DIR)})
        return _serve(request, asset, {"Vary": "Accept"})

    return [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/api", json_index, methods=["GET"]),
        Route("/ui/{name}", static, methods=["GET", "HEAD"]),
    ]


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    asset = ASSETS.get(name)
    if asset is None:
        raise ApiError(404, "not found", {"path": request.url.path})
    return _serve(request, asset)
