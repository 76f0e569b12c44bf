"""The web service (FastAPI): recommendations from precomputed item representations.

Unknown ids are 404, malformed bodies, out-of-range k and degenerate numbers (NaN, infinities,
weights that cannot form a mean) are 422, every other input error is 400 with a message; nothing a
client sends should produce a 5xx, and no error body echoes more than a few dozen characters of
what was sent.

The read endpoints are `async` and answer with pre-encoded JSON (orjson when installed): on the
event loop, without a thread-pool hop or response-model re-validation, since the search itself
takes well under a millisecond.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator
from starlette.routing import Route

from vlmrec import __version__
from vlmrec.errors import NotFoundError, VlmrecError
from vlmrec.serving.http import BodyLimit, HttpLimits, add_docs, token_guard
from vlmrec.serving.state import MAX_ID_LEN, Recommendation, ServingState, vector_problem

log = logging.getLogger(__name__)

try:  # a JSON encoder ~5x faster than the standard one; optional (vlmrec[serve] installs it)
    import orjson

    def dumps(obj: Any) -> bytes:
        """Encode a response body."""
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - exercised only without the serve extra

    def dumps(obj: Any) -> bytes:
        """Encode a response body."""
        return json.dumps(obj, separators=(",", ":")).encode()


MAX_K = 1000
MAX_WEIGHT = 1e9
ECHO_CHARS = 80  # at most this much of a rejected input is repeated in an error body
MAX_ERRORS = 5  # validation errors listed in a 422 (the total is given)
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"number of items, 1..{MAX_K}")]
FLOAT32_MAX = float(np.finfo(np.float32).max)
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# strict: a number is a number ("1" and true are refused, not read as 1.0)
Float32 = Annotated[float, Strict(), Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX, allow_inf_nan=False)]
Weight = Annotated[float, Strict(), Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]


class Recommendations(BaseModel):
    items: list[str]
    scores: list[float]


class AdhocRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[str] = Field(min_length=1, max_length=10_000, description="item ids the user interacted with")
    weights: list[Weight] | None = Field(
        None,
        description=f"one weight per item (default 1): finite, 0..{MAX_WEIGHT:g}, at least one above 0",
    )
    k: int = Field(20, ge=1, le=MAX_K)

    @model_validator(mode="after")
    def _weights(self):
        if self.weights is not None:
            if len(self.weights) != len(self.items):
                raise ValueError(f"weights: {len(self.weights)} values for {len(self.items)} items")
            if not any(w > 0 for w in self.weights):
                raise ValueError("weights: at least one must be above 0 (they form a weighted mean)")
        return self


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=MAX_ID_LEN)
    item_id: str = Field(min_length=1, max_length=MAX_ID_LEN)
    timestamp: FiniteFloat | None = Field(None, description="seconds since the epoch (default: now)")


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str = Field(min_length=1, max_length=MAX_ID_LEN)
    vector: list[Float32] | None = Field(None, min_length=1, max_length=65_536)
    text: str | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _one(self):
        if (self.vector is None) == (self.text is None):
            raise ValueError("give exactly one of 'vector' or 'text'")
        if self.vector is not None:
            problem = vector_problem(np.asarray(self.vector, np.float64))
            if problem:
                raise ValueError(f"vector: {problem}")
        return self


def _clip(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else f"{text[:ECHO_CHARS]}... ({len(text)} characters)"


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json")


def _recs(r: Recommendation) -> Response:
    return _json({"items": r.item_ids, "scores": r.scores})


def _k_from(request: Request) -> int:
    """`k` from the query string, validated as FastAPI validates `K` (same 422 errors)."""
    raw = request.query_params.get("k")
    if raw is None:
        return 20
    try:
        k = int(raw)
    except ValueError:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "k"),
                    "msg": "Input should be a valid integer",
                    "type": "int_parsing",
                    "input": raw,
                }
            ]
        ) from None
    if not 1 <= k <= MAX_K:
        kind, bound = ("greater_than_equal", 1) if k < 1 else ("less_than_equal", MAX_K)
        words = "greater than or equal to" if k < 1 else "less than or equal to"
        raise RequestValidationError(
            [{"loc": ("query", "k"), "msg": f"Input should be {words} {bound}", "type": kind, "input": raw}]
        )
    return k


def _id_from(request: Request, name: str) -> str:
    value = request.path_params[name]
    if len(value) > MAX_ID_LEN:
        raise RequestValidationError(
            [
                {
                    "loc": ("path", name),
                    "msg": f"String should have at most {MAX_ID_LEN} characters",
                    "type": "string_too_long",
                    "input": value,
                }
            ]
        )
    return value


def create_app(state: ServingState, limits: HttpLimits | None = None) -> FastAPI:
    """The FastAPI application serving `state`, with the write token, request-size limit and
    offline docs of `limits` (serving/http.py; the request-read timeout is the server's)."""
    # long: the routes are closures over `state` and `limits`, declared in FastAPI's one-function style
    limits = limits or HttpLimits()
    token = limits.token.get_secret_value() if limits.token is not None else None
    app = FastAPI(
        title="vlmrec",
        version=__version__,
        description="Recommendations from precomputed item representations (offline extraction, online matching)."
        + (" POST /events and POST /items need 'Authorization: Bearer TOKEN'." if token else ""),
        docs_url=None,
        redoc_url=None,
    )
    docs = add_docs(app)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    writes = [Depends(token_guard(token))]

    # only the project's own NotFoundError is a 404: a KeyError from a bug stays a 500
    @app.exception_handler(NotFoundError)
    async def _not_found(_, exc: NotFoundError):
        return _json({"detail": str(exc)}, 404)

    @app.exception_handler(VlmrecError)
    async def _bad_request(_, exc: VlmrecError):
        return _json({"detail": str(exc)}, 400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_, exc: RequestValidationError):
        errors = []
        for e in exc.errors()[:MAX_ERRORS]:
            item = {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200], "type": e.get("type")}
            if "input" in e and e.get("type") not in ("missing", "json_invalid"):
                item["input"] = _clip(e["input"])
            errors.append(item)
        return _json({"detail": errors, "errors": len(exc.errors())}, 422)

    @app.get("/health", response_model=dict)
    async def health() -> Response:
        """Status, sizes, the index in use (and why), counts of skipped log lines."""
        return _json(
            {
                "status": "ok",
                "version": __version__,
                "pid": os.getpid(),
                **state.health(),
                **state.description,
                "writes": "token required" if token else "open (loopback only)",
                "docs": "/docs" if docs else "off (install fastapi-offline); schema at /openapi.json",
                "note": "factor mode folds new users in as the mean of their items' factors"
                if state.mode == "factors"
                else "",
            }
        )

    @app.get("/recommend/{user_id}", response_model=Recommendations)
    async def recommend_user(user_id: Annotated[str, Path(max_length=MAX_ID_LEN)], k: K = 20):
        """Top-k unseen items for a known user."""
        return _recs(state.recommend_user(user_id, k))

    @app.post("/recommend", response_model=Recommendations)
    async def recommend_adhoc(req: AdhocRequest):
        """Top-k items for an ad-hoc history (optionally weighted)."""
        return _recs(state.recommend_items(req.items, req.k, req.weights))

    @app.post("/events", status_code=201, dependencies=writes)
    def add_event(event: Event) -> dict:
        """Record an interaction; acknowledged (201) once it is on disk."""
        created = state.add_event(event.user_id, event.item_id, event.timestamp)
        return {"ok": True, "new_user": created}

    @app.get("/items/{item_id}/similar", response_model=Recommendations)
    async def similar(item_id: Annotated[str, Path(max_length=MAX_ID_LEN)], k: K = 20):
        """The k items nearest to one item."""
        return _recs(state.similar(item_id, k))

    # The two hot read paths, served by plain Starlette routes placed before their FastAPI twins
    # (which still document them in OpenAPI): the same validation and errors, without FastAPI's
    # per-request parameter machinery (~80 us of a ~150 us request on a small catalogue).
    async def fast_recommend(request: Request) -> Response:
        return _recs(state.recommend_user(_id_from(request, "user_id"), _k_from(request)))

    async def fast_similar(request: Request) -> Response:
        return _recs(state.similar(_id_from(request, "item_id"), _k_from(request)))

    app.router.routes[:0] = [
        Route("/recommend/{user_id}", fast_recommend, methods=["GET"], include_in_schema=False),
        Route("/items/{item_id}/similar", fast_similar, methods=["GET"], include_in_schema=False),
    ]

    @app.post("/items", status_code=201, dependencies=writes)
    def add_item(item: NewItem) -> dict:
        """Add an item by vector, or by text when the service has a text encoder."""
        if item.text is not None:
            if state.encoder is None:
                raise HTTPException(
                    400, "this service has no text encoder for on-the-fly extraction; send 'vector'"
                )
            vector = state.encoder(item.text)
        else:
            vector = np.asarray(item.vector, np.float32)
        state.add_item(item.item_id, vector)
        return {"ok": True, "items": len(state.items)}

    return app
