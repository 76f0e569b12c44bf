"""The FastAPI app of `vlmrec explore` (the routes are listed in serving/explore.py) and the
function that serves it on 127.0.0.1.

Errors: an unknown user or item id is 404 (the page itself, status 404, when the view URL names
one; a small HTML page for an image; JSON under /api), an unknown model name or a bad `k` is
400 / 422 with the valid choices; nothing a client sends reaches a stack trace.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vlmrec import __version__
from vlmrec.errors import NotFoundError, VlmrecError
from vlmrec.serving.explore import IMAGE_TYPES, MAX_K, Explorer

log = logging.getLogger(__name__)

K = Annotated[int, Query(ge=1, le=MAX_K, description=f"items per model, 1..{MAX_K}")]
STATIC = ("explore.html", "explore.js")


def static_text(name: str) -> str:
    """A file of serving/static (the page and its script; shipped with the package)."""
    return (resources.files("vlmrec.serving") / "static" / name).read_text(encoding="utf-8")


def not_found_page(message: str) -> HTMLResponse:
    """A plain 404 page (no stack trace, the message escaped)."""
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Not found</title></head><body "
        "style='font-family:system-ui,sans-serif;margin:2em'><h1>404: not found</h1>"
        f"<p>{html.escape(message)}</p><p><a href='/'>Back to the explorer</a></p></body></html>"
    )
    return HTMLResponse(body, status_code=404)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def create_explore_app(explorer: Explorer) -> FastAPI:
    """The explore page and its JSON API over one loaded run."""
    app = FastAPI(
        title="vlmrec explore", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    _errors(app)
    _page_routes(app, explorer)
    _api_routes(app, explorer)
    return app


def _page_routes(app: FastAPI, explorer: Explorer) -> None:
    """The page, its script and the item images."""
    page, script = (static_text(n) for n in STATIC)

    @app.get("/", response_class=HTMLResponse)
    def index(user: str | None = None, item: str | None = None, items: str | None = None) -> HTMLResponse:
        """The page; 404 (the same page, which then says why) when the URL names an unknown id."""
        status = 200
        try:
            if user:
                explorer.user(user)
            if item:
                explorer.item(item)
            for i in _csv(items):
                explorer.item(i)
        except NotFoundError:
            status = 404
        return HTMLResponse(page, status_code=status)

    @app.get("/static/explore.js")
    def js() -> Response:
        """The page's script."""
        return Response(script, media_type="text/javascript")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        """No icon (and no 404 in the console for it)."""
        return Response(status_code=204)

    @app.get("/images/{item_id}")
    def image(item_id: str) -> Response:
        """The item's image file (from the dataset's table, by item id), or a 404 page."""
        try:
            path = explorer.image(item_id)
        except NotFoundError as e:
            return not_found_page(str(e))
        return FileResponse(
            path, media_type=IMAGE_TYPES[path.suffix.lower()], headers={"Cache-Control": "max-age=3600"}
        )


def _api_routes(app: FastAPI, explorer: Explorer) -> None:
    """The JSON the page reads (module docstring of serving/explore.py)."""

    @app.get("/api/info")
    def info() -> dict:
        """The run, its models (URL names) and the page's defaults."""
        return explorer.info()

    @app.get("/api/users")
    def users(q: Annotated[str, Query(max_length=200)] = "") -> list[dict]:
        """Test users whose id contains `q`."""
        return explorer.find_users(q)

    @app.get("/api/items")
    def items_search(q: Annotated[str, Query(max_length=200)] = "") -> list[dict]:
        """Items whose id or title contains `q`, the most popular first."""
        return explorer.find_items(q)

    @app.get("/api/recommend")
    def recommend(
        user: Annotated[str | None, Query(max_length=500)] = None,
        items: Annotated[str | None, Query(max_length=20_000)] = None,
        models: Annotated[str | None, Query(max_length=2_000)] = None,
        k: K = 10,
    ) -> dict:
        """Each model's top-`k` for a user (`user=ID`) or an ad-hoc history (`items=I1,I2`)."""
        if user:
            return explorer.recommend_user(user, k, _csv(models))
        if items:
            return explorer.recommend_history(_csv(items), k, _csv(models))
        raise VlmrecError("give user=ID or items=ID1,ID2,...")

    @app.get("/api/items/{item_id}")
    def item_view(item_id: str, k: K = 10) -> dict:
        """An item, its text and description, and its `k` nearest items by content."""
        return explorer.item_view(item_id, k)


def _errors(app: FastAPI) -> None:
    """404 / 400 / 422 answers: JSON under /api, a small page elsewhere."""

    def answer(request: Request, status: int, detail: object) -> Response:
        """JSON for the API, a page for the rest."""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": detail}, status_code=status)
        if status == 404:
            return not_found_page(str(detail))
        return HTMLResponse(f"<p>{html.escape(str(detail))}</p>", status_code=status)

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> Response:
        return answer(request, 404, str(exc))

    @app.exception_handler(VlmrecError)
    async def _bad(request: Request, exc: VlmrecError) -> Response:
        return answer(request, 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200]} for e in exc.errors()[:5]
        ]
        return answer(request, 422, detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = f"no page {request.url.path[:80]!r}" if exc.status_code == 404 else exc.detail
        return answer(request, exc.status_code, detail)


def explore(run_dir: str | Path, port: int = 8000, announce: Callable[[str], None] = log.info) -> None:
    """Load the run and serve the explore page on http://127.0.0.1:PORT (blocks)."""
    import uvicorn

    from vlmrec.serving.server import pin_threads

    pin_threads(1)
    explorer = Explorer(run_dir)
    announce(
        f"exploring {explorer.name} ({len(explorer.served)} models, {explorer.ds.n_items} items) "
        f"on http://127.0.0.1:{port}/"
    )
    uvicorn.run(create_explore_app(explorer), host="127.0.0.1", port=port, log_level="warning")
