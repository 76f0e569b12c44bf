"""uvicorn's HTTP protocol with a deadline for reading each request (see serving/http.py): a
connection that has not sent a whole request, head and body, within `request_timeout` seconds is
closed. uvicorn bounds only idle keep-alive connections and the head's size by itself."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from vlmrec.serving.http import DEFAULT_REQUEST_TIMEOUT


def _protocol_base() -> type[asyncio.Protocol]:
    """uvicorn's fastest HTTP protocol here (httptools when installed, else h11)."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools comes with vlmrec[serve]
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


class TimedProtocol(_protocol_base()):  # type: ignore[misc]
    """uvicorn's HTTP protocol with a deadline for reading each request: armed when a connection
    opens and after every response, cleared once the request (head and body) has arrived; a
    connection that has not sent a whole request by then is closed."""

    request_timeout: ClassVar[float] = DEFAULT_REQUEST_TIMEOUT

    def connection_made(self, transport: Any) -> None:  # noqa: D102 - asyncio.Protocol
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:  # noqa: D102
        super().data_received(data)
        if self._request_read():
            self._disarm()

    def on_response_complete(self) -> None:  # noqa: D102
        super().on_response_complete()
        if not self.transport.is_closing() and not self._request_read():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self._disarm()
        super().connection_lost(exc)

    def _request_read(self) -> bool:
        """True while a request has fully arrived and its response is not finished."""
        cycle = self.cycle
        return cycle is not None and not cycle.more_body and not cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
