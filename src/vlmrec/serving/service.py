"""The web service (FastAPI): recommendations from precomputed item representations.

Unknown ids are 404, malformed bodies and out-of-range k are 422, every other input error is 400
with a message; nothing a client sends should produce a 5xx.
"""

from __future__ import annotations

import logging
from typing import Annotated

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vlmrec import __version__
from vlmrec.errors import VlmrecError
from vlmrec.serving.state import ServingState

log = logging.getLogger(__name__)

MAX_K = 1000
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"number of items, 1..{MAX_K}")]


class Recommendations(BaseModel):
    items: list[str]
    scores: list[float]


class AdhocRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[str] = Field(min_length=1, max_length=10_000, description="item ids the user interacted with")
    weights: list[float] | None = Field(None, description="one weight per item (default 1)")
    k: int = Field(20, ge=1, le=MAX_K)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256)
    item_id: str = Field(min_length=1, max_length=256)
    timestamp: float | None = None


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str = Field(min_length=1, max_length=256)
    vector: list[float] | None = None
    text: str | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _one(self):
        if (self.vector is None) == (self.text is None):
            raise ValueError("give exactly one of 'vector' or 'text'")
        return self


def create_app(state: ServingState) -> FastAPI:
    app = FastAPI(
        title="vlmrec",
        version=__version__,
        description="Recommendations from precomputed item representations (offline extraction, online matching).",
    )

    @app.exception_handler(KeyError)
    async def _not_found(_, exc: KeyError):
        return JSONResponse(
            status_code=404, content={"detail": str(exc.args[0]) if exc.args else "not found"}
        )

    @app.exception_handler(VlmrecError)
    async def _bad_request(_, exc: VlmrecError):
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "version": __version__,
            "mode": state.mode,
            "items": len(state.item_ids),
            "users": len(state.user_ids),
            "dim": int(state.item_vectors.shape[1]),
            "index": state.index.kind,
            **state.description,
            "note": "factor mode folds new users in as the mean of their items' factors"
            if state.mode == "factors"
            else "",
        }

    @app.get("/recommend/{user_id}", response_model=Recommendations)
    def recommend_user(user_id: str, k: K = 20):
        r = state.recommend_user(user_id, k)
        return Recommendations(items=r.item_ids, scores=r.scores)

    @app.post("/recommend", response_model=Recommendations)
    def recommend_adhoc(req: AdhocRequest):
        r = state.recommend_items(req.items, req.k, req.weights)
        return Recommendations(items=r.item_ids, scores=r.scores)

    @app.post("/events", status_code=201)
    def add_event(event: Event) -> dict:
        created = state.add_event(event.user_id, event.item_id, event.timestamp)
        return {"ok": True, "new_user": created}

    @app.get("/items/{item_id}/similar", response_model=Recommendations)
    def similar(item_id: str, k: K = 20):
        r = state.similar(item_id, k)
        return Recommendations(items=r.item_ids, scores=r.scores)

    @app.post("/items", status_code=201)
    def add_item(item: NewItem) -> dict:
        if item.text is not None:
            if state.encoder is None:
                raise HTTPException(
                    400, "this service has no text encoder for on-the-fly extraction; send 'vector'"
                )
            vector = state.encoder(item.text)
        else:
            vector = np.asarray(item.vector, np.float32)
        state.add_item(item.item_id, vector)
        return {"ok": True, "items": len(state.item_ids)}

    return app
