"""Small JPEG previews of a job's image, mask and output, read from S3 and kept in memory.

The dashboard shows them through its own routes, so the bucket never needs to be public
and no presigned URL leaves the operator's network. A thumbnail is keyed by the object's
URI and a version the caller chooses (the job's attempt), so a retried job's new output
is not hidden behind the old one's preview.
"""

from __future__ import annotations

import functools
import io

from botocore.exceptions import BotoCoreError
from PIL import Image, UnidentifiedImageError

from pipeline.errors import InputError, StorageUnavailable
from pipeline.images import MAX_PIXELS
from pipeline.storage import S3Uri, Storage

THUMBNAIL_PX = 192
JPEG_QUALITY = 80
# Inputs and outputs are checked at their own limits; a preview reads no more than this.
MAX_SOURCE_BYTES = 64 * 1024 * 1024
CACHED_THUMBNAILS = 1024


def thumbnail(data: bytes, *, max_px: int = THUMBNAIL_PX) -> bytes:
    """A JPEG of the image in `data` fitting in `max_px` x `max_px`; `InputError` when the
    bytes are no image Pillow can read or the image is over the pixel limit."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise InputError(f"image is {image.width}x{image.height}, too large to preview")
            # A JPEG decodes straight at a fraction of its size: much less work.
            image.draft("RGB", (max_px, max_px))
            preview = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"not an image that can be previewed: {error}") from None
    preview.thumbnail((max_px, max_px))
    out = io.BytesIO()
    preview.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


class Thumbnails:
    """Previews of objects in S3, the most recent `CACHED_THUMBNAILS` kept in memory."""

    def __init__(self, storage: Storage, *, max_px: int = THUMBNAIL_PX) -> None:
        self._storage = storage
        self._max_px = max_px
        self._cached = functools.lru_cache(maxsize=CACHED_THUMBNAILS)(self._make)

    def __repr__(self) -> str:
        return f"Thumbnails(max_px={self._max_px})"

    def get(self, uri: str, version: str = "") -> bytes:
        """The preview of the object at `uri` (an s3:// URI) as it is at `version`;
        `InputError` when it is missing, too large or not an image, `PermanentError` when
        S3 refuses access, `StorageUnavailable` when S3 cannot be reached."""
        return self._cached(uri, version)

    def _make(self, uri: str, version: str) -> bytes:
        try:
            data = self._storage.read(S3Uri.parse(uri), max_bytes=MAX_SOURCE_BYTES)
        except BotoCoreError as error:  # no connection, a timeout: it may pass
            raise StorageUnavailable(f"S3 could not be reached for {uri}: {error}") from None
        return thumbnail(data, max_px=self._max_px)
