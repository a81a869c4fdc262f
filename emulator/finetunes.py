"""Finetunes: reading training zips, and each key's finetunes.

A training zip holds 1 to 20 images (`.jpg`, `.jpeg`, `.png`, `.webp`); caption files and
other entries are ignored, as are macOS resource forks. A finetune is usable by fills
once its training has made it Ready; keys never see each other's finetunes.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from emulator.images import RGB, ImageError, decode_base64, open_image, rgb_array
from emulator.style import Style
from emulator.tasks import TaskStatus

MAX_TRAINING_IMAGES = 20
MAX_TRAINING_IMAGE_BYTES = 50 * 1024 * 1024
TRAINING_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


@dataclass(eq=False)
class Finetune:
    """One trained (or training) finetune. `settings` are its training request's fields."""

    id: str
    owner: str
    settings: dict[str, Any]
    created_at: str
    image_count: int
    status: TaskStatus = TaskStatus.PENDING
    style: Style | None = field(default=None, repr=False)

    def trained(self, style: Style | None) -> None:
        """Training ended: with a style it is Ready, without one it failed."""
        self.style = style
        self.status = TaskStatus.READY if style is not None else TaskStatus.ERROR

    def details(self) -> dict[str, Any]:
        """What `finetune_details` reports, including what the emulator learned."""
        return {
            **self.settings,
            "finetune_id": self.id,
            "status": self.status.value,
            "created_at": self.created_at,
            "image_count": self.image_count,
            "style": self.style.as_json() if self.style is not None else None,
        }


class FinetuneRegistry:
    """Finetunes by key and id."""

    def __init__(self) -> None:
        self._by_owner: dict[str, dict[str, Finetune]] = {}

    def add(self, finetune: Finetune) -> None:
        self._by_owner.setdefault(finetune.owner, {})[finetune.id] = finetune

    def owned(self, owner: str, finetune_id: str) -> Finetune | None:
        return self._by_owner.get(owner, {}).get(finetune_id)

    def ids(self, owner: str) -> list[str]:
        return list(self._by_owner.get(owner, {}))

    def remove(self, owner: str, finetune_id: str) -> Finetune | None:
        return self._by_owner.get(owner, {}).pop(finetune_id, None)


def read_training_images(file_data: str) -> list[RGB]:
    """The images of a base64 training zip; `ImageError` says what is wrong with it."""
    try:
        with zipfile.ZipFile(io.BytesIO(decode_base64(file_data))) as archive:
            entries = [info for info in archive.infolist() if _is_training_image(info)]
            _check_count(len(entries))
            return [_read_entry(archive, info) for info in entries]
    except _ZIP_ERRORS as error:
        raise ImageError(f"Not a readable zip archive: {error}") from None


def _is_training_image(info: zipfile.ZipInfo) -> bool:
    path = PurePosixPath(info.filename)
    resource_fork = path.parts[0] == "__MACOSX" or path.name.startswith("._")
    return (
        not info.is_dir() and not resource_fork and path.suffix.lower() in (TRAINING_IMAGE_SUFFIXES)
    )


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_TRAINING_IMAGES:
        raise ImageError(f"The zip must hold 1 to {MAX_TRAINING_IMAGES} images, it holds {count}")


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> RGB:
    if info.file_size > MAX_TRAINING_IMAGE_BYTES:
        raise ImageError(f"{info.filename}: larger than {MAX_TRAINING_IMAGE_BYTES} bytes")
    try:
        return rgb_array(open_image(archive.read(info)))
    except ImageError as error:
        raise ImageError(f"{info.filename}: {error}") from None
