"""Guards every request body passes before any route runs (and so before anything is stored):

- JsonContentType: a body must be declared `application/json` (415). A browser sends a cross-site
  `text/plain` or form POST without a CORS preflight, so accepting such bodies would let any web page
  write through a visitor's network position; the JSON content type forces the preflight. The one upload
  route (UPLOADS) takes a multipart form instead, which a cross-site page could also send: there a browser
  names the page's `Origin`, and one other than the server's own is refused (403).
- BodySizeLimit: anything past the configured size is refused with 413 (checked against Content-Length up
  front and against the bytes actually received).
- JsonDepthLimit: JSON nested deeper than MAX_JSON_DEPTH is refused with 400 before a parser sees it
  (Python's recursive decoders raise RecursionError on deep input, and every level costs memory).
"""

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from app.api.errors import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_MEDIA_TYPE = "application/json"
MULTIPART_MEDIA_TYPE = "multipart/form-data"
UPLOADS = {"/v1/architectures/onnx": MULTIPART_MEDIA_TYPE}
"""Routes that take a file as a multipart form instead of a JSON body."""
MAX_JSON_DEPTH = 32
MEDIA_TYPE_SHOWN = 64

# An escape is a backslash and the byte after it; removing escapes first means no quote left is escaped.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
# With escapes gone a string is a quote, anything but a quote, a quote; possessive, so it never backtracks.
_STRING = re.compile(rb'"[^"]*+"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_DEPTH_STEP = np.zeros(256, dtype=np.int8)
_DEPTH_STEP[list(b"[{")] = 1
_DEPTH_STEP[list(b"]}")] = -1


def json_depth(body: bytes) -> int:
    """How deeply `body`'s arrays and objects nest (0 for a scalar), in linear time at C speed: strings
    removed, only the bracket bytes kept, the running depth summed by numpy. Valid JSON gives its exact
    depth; for invalid JSON the figure is meaningless, and the parser refuses the body anyway."""
    structure = _STRING.sub(b"", _ESCAPE.sub(b"", body)).translate(None, _NOT_BRACKETS)
    if not structure:
        return 0
    steps = _DEPTH_STEP[np.frombuffer(structure, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int32).max())


def has_body(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
        return False
    headers = Headers(scope=scope)
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


class JsonContentType:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if has_body(scope):
            headers = Headers(scope=scope)
            declared = headers.get("content-type")
            media_type = (declared or "").partition(";")[0].strip().lower()
            expected = UPLOADS.get(scope["path"], JSON_MEDIA_TYPE)
            if media_type != expected:
                got = "no content type" if declared is None else repr(media_type[:MEDIA_TYPE_SHOWN])
                message = f"expected '{expected}', got {got}"
                await error_response(415, [("content-type", message)])(scope, receive, send)
                return
            if expected != JSON_MEDIA_TYPE and not same_origin(headers):
                message = "an upload must come from this server's own pages or from a client that is not a browser"
                await error_response(403, [("origin", message)])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def same_origin(headers: Headers) -> bool:
    """Whether a request carries no `Origin` (not sent by a browser's cross-site page) or the server's own."""
    origin = headers.get("origin")
    return origin is None or urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                await self._refuse(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        await self.app(scope, _replay(messages, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, [("body", f"request body exceeds the limit of {self.max_body_bytes} bytes")])
        await response(scope, receive, send)


class JsonDepthLimit:
    """Reads the whole body (BodySizeLimit, outside it, has bounded it) and replays it to the route; the
    check runs in a worker thread, so a large body does not stall the event loop."""

    def __init__(self, app: ASGIApp, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not has_body(scope) or scope["path"] in UPLOADS:  # an uploaded file is no JSON
            await self.app(scope, receive, send)
            return
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(message.get("body", b"") for message in messages)
        if await run_in_threadpool(json_depth, body) > self.max_depth:  # an 8 MB body takes up to 0.5 s
            response = error_response(400, [("body", f"JSON nested deeper than {self.max_depth} levels")])
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the messages already read, then reads on (e.g. a disconnect)."""

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay
