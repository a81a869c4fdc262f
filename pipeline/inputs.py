"""Local input files uploaded once, content-addressed: `s3://BUCKET/inputs/sha256/<hex><ext>`.

The key is the SHA-256 of the bytes, so a re-run (or another batch using the same
photo) uploads nothing new, and a changed file never overwrites what an earlier batch
used.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from pipeline.errors import InputError
from pipeline.storage import S3_SCHEME, S3Uri, Storage

INPUTS_PREFIX = "inputs/sha256/"
MAX_LOCAL_INPUT_BYTES = 40 * 1024 * 1024


def content_uri(bucket: str, data: bytes, suffix: str) -> S3Uri:
    return S3Uri(bucket, f"{INPUTS_PREFIX}{hashlib.sha256(data).hexdigest()}{suffix.lower()}")


def local_path(location: str, base_dir: Path) -> Path | None:
    """The local file a manifest location names, or None for an `s3://` URI."""
    if location.startswith(S3_SCHEME):
        return None
    path = Path(location).expanduser()
    return path if path.is_absolute() else base_dir / path


class InputUploader:
    """Uploads each distinct local file once per process and remembers where it went."""

    def __init__(self, storage: Storage, bucket: str, base_dir: Path) -> None:
        self._storage = storage
        self._bucket = bucket
        self._base_dir = base_dir
        self._uploaded: dict[Path, str] = {}
        self.uploads = 0

    def resolve(self, location: str) -> str:
        """An `s3://` URI for `location`, uploading a local file if S3 lacks it."""
        path = local_path(location, self._base_dir)
        if path is None:
            return location
        if path not in self._uploaded:
            self._uploaded[path] = str(self._upload(path))
        return self._uploaded[path]

    def _upload(self, path: Path) -> S3Uri:
        data = read_local(path)
        uri = content_uri(self._bucket, data, path.suffix)
        if self._storage.metadata(uri) is None:
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self._storage.write(uri, data, content_type=content_type)
            self.uploads += 1
        return uri


def read_local(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_LOCAL_INPUT_BYTES:
            raise InputError(f"{path} is {size} bytes, over the {MAX_LOCAL_INPUT_BYTES} limit")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not an image file") from None
    except PermissionError:
        raise InputError(f"{path} cannot be read (permission denied)") from None
