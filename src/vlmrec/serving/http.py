"""What stands between the network and the service: the write token, the request-size limit, the
request-read timeout and the offline API docs (issue 23).

- **Writes need a token** (`POST /events`, `POST /items`) when one is set (`--token` or the
  `VLMREC_SERVE_TOKEN` environment variable), sent as `Authorization: Bearer TOKEN` and compared
  in constant time. Binding to anything but a loopback address without a token is refused: the
  write endpoints change what every user is recommended, and the logs keep it after a restart.
- **Request size**: a body over `max_body_bytes` is answered 413 (from its Content-Length before
  anything is read, or as soon as a chunked body passes the limit) and the connection closed.
- **Request-read timeout**: a client has `request_timeout` seconds to send a whole request, head
  and body; then the connection is closed. uvicorn's own settings bound only idle keep-alive
  connections (`timeout_keep_alive`, armed after a response) and the head's size
  (`h11_max_incomplete_event_size`); nothing of its own bounds a request sent half-way, so
  thousands of half-sent requests once held the server (`protocol.TimedProtocol`).
- **/docs** serves Swagger UI from the files the `fastapi-offline` package ships (no CDN); without
  that package /docs is off and `/openapi.json` stays.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr

if TYPE_CHECKING:  # fastapi and starlette come with vlmrec[serve]: imported where used
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_ENV = "VLMREC_SERVE_TOKEN"
"""The environment variable holding the write token (kept out of the process list)."""
MIN_TOKEN_CHARS = 16
DEFAULT_MAX_BODY = 4 * 1024 * 1024
"""4 MiB: a 65,536-dim vector or a 10,000-item history as JSON fits with room to spare."""
DEFAULT_REQUEST_TIMEOUT = 15.0
STATIC = "/static-docs"


class HttpLimits(BaseModel):
    """The HTTP-level settings of a server (the CLI options, also read by every worker)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    token: SecretStr | None = Field(None, description="bearer token the write endpoints require")
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY, ge=1024, le=1 << 30, description="largest request body; larger ones get 413"
    )
    request_timeout: float = Field(
        DEFAULT_REQUEST_TIMEOUT,
        gt=0,
        le=3600,
        description="seconds a client has to send a whole request (head and body)",
    )

    def public_json(self) -> str:
        """The limits without the token (what goes into a worker's environment as JSON)."""
        return self.model_dump_json(exclude={"token"})


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_token(host: str, token: str | None) -> str | None:
    """The token to use (None: writes open, loopback only), or a ValueError saying why not."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"the write token must have at least {MIN_TOKEN_CHARS} characters")
    if token is not None and (
        not token.isprintable() or any(c.isspace() for c in token) or not token.isascii()
    ):
        raise ValueError(
            "the write token must be printable ASCII without spaces (it travels in an HTTP header)"
        )
    if token is None and not is_loopback(host):
        raise ValueError(
            f"--host {host}: binding beyond this machine needs a write token for POST /events and "
            f"POST /items: set {TOKEN_ENV} (or --token)"
        )
    return token


# ---- the write token ------------------------------------------------------------------------------
def token_guard(token: str | None):
    """A FastAPI dependency requiring `Authorization: Bearer <token>` (no-op without a token)."""
    from fastapi import HTTPException, Request

    expected = token.encode() if token else None

    async def require_token(request: Request) -> None:
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise HTTPException(
                401,
                "this endpoint needs the write token: send 'Authorization: Bearer TOKEN'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    # the annotation FastAPI reads to pass the request (this module imports fastapi lazily, so
    # the postponed annotation "Request" would not resolve in its globals)
    require_token.__annotations__ = {"request": Request, "return": None}
    return require_token


# ---- the request-size limit -------------------------------------------------------------------------
class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 and the connection closed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, int(declared))
            return
        from starlette.exceptions import HTTPException

        seen = 0
        started = False

        async def limited() -> Message:
            # an HTTPException: FastAPI turns any other error while reading a body into a 400
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._detail(None), headers={"connection": "close"})
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watch)
        except HTTPException as e:  # raised where no exception handler answered it
            if e.status_code != 413 or started:
                raise
            await self._refuse(send, None)

    def _detail(self, size: int | None) -> str:
        what = f"{size:,} bytes" if size is not None else "more bytes than allowed"
        return f"request body of {what} is over the limit of {self.max_bytes:,} bytes (vlmrec serve --max-body-bytes)"

    async def _refuse(self, send: Send, size: int | None) -> None:
        body = json.dumps({"detail": self._detail(size)}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


PROTOCOL = "vlmrec.serving.protocol:TimedProtocol"
"""What `uvicorn.run(http=...)` gets (a string, so worker processes import it too)."""


# ---- offline API docs -------------------------------------------------------------------------------
def docs_assets() -> Path | None:
    """The folder of Swagger UI files `fastapi-offline` ships, or None when it is not installed."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    needed = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
    return folder if all((folder / f).is_file() for f in needed) else None


def add_docs(app: FastAPI) -> bool:
    """/docs from local files (app created with docs_url=None); False when none are installed."""
    from fastapi import HTTPException
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse

    folder = docs_assets()
    if folder is None:
        return False
    files = {
        "swagger-ui-bundle.js": "text/javascript",
        "swagger-ui.css": "text/css",
        "favicon.png": "image/png",
    }

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon.png",
        )

    @app.get(STATIC + "/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        if name not in files:
            raise HTTPException(404, "no such file")
        return FileResponse(folder / name, media_type=files[name])

    return True


def limits_from_env(public_json: str | None) -> HttpLimits:
    """A worker's limits: the JSON its parent put in the environment, the token from TOKEN_ENV."""
    base = HttpLimits.model_validate_json(public_json) if public_json else HttpLimits()
    token = os.environ.get(TOKEN_ENV) or None
    return base.model_copy(update={"token": SecretStr(token) if token else None})
