"""Reading request bodies with a size limit, and the receiver's JSON answers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from pipeline.errors import BodyTooLarge


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if over(declared, max_bytes):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def over(declared: str, max_bytes: int) -> bool:
    """True when a declared Content-Length is over `max_bytes` (ASCII digits only, and
    never converted when it is too long to matter: no int-size errors)."""
    declared = declared.strip()
    if not (declared.isascii() and declared.isdigit()):
        return False  # absent or malformed: the streamed size is what counts
    return len(declared) > len(str(max_bytes)) or int(declared) > max_bytes


def answer(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)
