"""HTTP details shared by every blueprint: JSON errors, validators, gzip.

- Errors of the API are JSON ``{"error": message}`` with the right status.
- Every JSON answer carries a weak ETag (from its version, or a hash of its
  body) and answers 304 to a matching ``If-None-Match``. Weak, because the
  same ETag is sent for the gzip and the identity encoding of a body.
- Answers are gzip-compressed when the client accepts it and the body is
  larger than a few hundred bytes; static files are compressed once per file
  version and kept in memory (JSROOT's modules are served many times).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.security import safe_join

from overwatch.lru import LRU

COMPRESSIBLE = frozenset(
    {
        "application/json",
        "text/html",
        "text/css",
        "text/javascript",
        "application/javascript",
        "text/plain",
        "image/svg+xml",
    }
)
#: JSROOT is pinned and never changes under one URL: let browsers keep it a day.
VENDORED_MAX_AGE = 86_400
#: Bodies smaller than this are not worth compressing (headers dominate).
GZIP_MIN_BYTES = 512
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Encoded:
    """A response body in both encodings, with its validator."""

    body: bytes
    gzipped: bytes | None
    etag: str

    @property
    def nbytes(self) -> int:
        return len(self.body) + len(self.gzipped or b"") + 200


def encode(body: bytes, etag: str) -> Encoded:
    gzipped = gzip.compress(body, GZIP_LEVEL, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
    return Encoded(body, gzipped, etag)


def make_etag(*parts: object) -> str:
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def byte_cache(max_bytes: int) -> LRU:
    """An LRU of :class:`Encoded` bodies bounded by their total size."""
    return LRU(max_cost=max_bytes, cost=lambda encoded: encoded.nbytes)


def wants_json() -> bool:
    """Whether this request is answered in JSON (the API, scripts) rather than a page."""
    if request.path.startswith("/api/") or "Authorization" in request.headers:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def safe_next(target: str | None) -> str:
    """Where to go after a form: only a path on this site, never another host."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ord(c) < 32 for c in target)
    ):
        return target
    return url_for("pages.runs")


def accepts_gzip() -> bool:
    return request.accept_encodings["gzip"] > 0


def json_error(message: str, status: int) -> Response:
    response = Response(json.dumps({"error": message}), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


#: The deepest nesting a JSON body may have; what the API takes is two levels deep.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


class BodyError(ValueError):
    """A request body that is not a bounded JSON document; ``status`` is 400 or 413."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets in strings not counted)."""
    depth = peak = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        peak = max(peak, depth)
    return peak


def json_body(max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The request's JSON body, refused (BodyError) when too large, too deep or malformed.

    Why not ``request.get_json``: Python's parser recurses once per level, so a
    body of 30,000 ``[`` ends in a RecursionError (a 500). The size bound is the
    app's ``MAX_CONTENT_LENGTH``.
    """
    limit = request.max_content_length
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise BodyError(f"the request body is larger than {limit} bytes", 413) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BodyError(f"the request body is not UTF-8 text: {error}") from None
    if not text.strip():
        raise BodyError("the request body is empty; expected a JSON object")
    depth = json_depth(text)
    if depth > max_depth:
        raise BodyError(f"the JSON body nests {depth} levels deep; at most {max_depth} are taken")
    try:
        return json.loads(text)
    except ValueError as error:
        raise BodyError(f"the request body is not valid JSON: {error}") from None


def not_modified(etag: str) -> bool:
    if "HTTP_IF_NONE_MATCH" not in request.environ:
        return False
    return request.if_none_match.contains_weak(etag)


def encoded_response(encoded: Encoded, mimetype: str = "application/json") -> Response:
    """A 200 (or 304) for a pre-encoded body, choosing gzip when the client takes it.

    Kept lean on purpose: this is the path of every cached histogram request.
    """
    headers = {
        "ETag": f'W/"{encoded.etag}"',
        "Vary": "Accept-Encoding",
        # Revalidate every time: an ongoing run changes from one minute to the next.
        "Cache-Control": "private, no-cache",
    }
    if not_modified(encoded.etag):
        response = Response(status=304, headers=headers)
    elif (
        encoded.gzipped is not None
        and "gzip" in request.environ.get("HTTP_ACCEPT_ENCODING", "")
        and accepts_gzip()
    ):
        headers["Content-Encoding"] = "gzip"
        response = Response(encoded.gzipped, mimetype=mimetype, headers=headers)
    else:
        response = Response(encoded.body, mimetype=mimetype, headers=headers)
    response.pre_encoded = True  # tells compress() to leave it alone
    return response


def json_response(data: Any, status: int = 200) -> Response:
    """JSON with an ETag from its content; 304 when the client has it already."""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    if status != 200:
        return Response(body, status=status, mimetype="application/json")
    etag = hashlib.sha1(body).hexdigest()[:24]
    return encoded_response(encode(body, etag))


def compress(response: Response) -> Response:
    """after_request hook: gzip a sizeable, compressible body for a client that accepts it."""
    if (
        getattr(response, "pre_encoded", False)
        or response.status_code != 200
        or response.direct_passthrough
        or response.is_streamed
        or "Content-Encoding" in response.headers
        or response.mimetype not in COMPRESSIBLE
        or request.method == "HEAD"
    ):
        return response
    response.vary.add("Accept-Encoding")
    if not accepts_gzip():
        return response
    body = response.get_data()
    if len(body) < GZIP_MIN_BYTES:
        return response
    response.set_data(gzip.compress(body, GZIP_LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    if response.get_etag()[0]:
        etag, _weak = response.get_etag()
        response.set_etag(etag, weak=True)
    return response


class OverwatchFlask(Flask):
    """Flask with compressed, cached static files."""

    static_gzip = byte_cache(32 * 1024 * 1024)

    def get_send_file_max_age(self, filename: str | None) -> int | None:
        if filename and filename.startswith("jsroot/"):
            return VENDORED_MAX_AGE
        return super().get_send_file_max_age(filename)

    def send_static_file(self, filename: str) -> Response:
        response = super().send_static_file(filename)
        if response.status_code != 200 or response.mimetype not in COMPRESSIBLE:
            return response
        response.vary.add("Accept-Encoding")
        if not accepts_gzip() or request.method == "HEAD":
            return response
        path = safe_join(str(self.static_folder), filename)
        if path is None:
            return response
        stat = os.stat(path)
        if stat.st_size < GZIP_MIN_BYTES:
            return response
        key = (path, stat.st_mtime_ns, stat.st_size)
        cached = self.static_gzip.get(key)
        if cached is None:
            with open(path, "rb") as stream:
                data = stream.read()
            cached = Encoded(b"", gzip.compress(data, 9, mtime=0), "")
            self.static_gzip.put(key, cached)
        response.close()
        compressed = Response(cached.gzipped, mimetype=response.mimetype)
        for header in ("Cache-Control", "Last-Modified", "Expires", "Vary"):
            if header in response.headers:
                compressed.headers[header] = response.headers[header]
        etag, _weak = response.get_etag()
        if etag:
            compressed.set_etag(etag, weak=True)
        compressed.headers["Content-Encoding"] = "gzip"
        return compressed
