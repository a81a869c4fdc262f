"""Finetunes and credits of a provider account, and the training folder a finetune is
made from.

The account's management endpoints (`my_finetunes`, `finetune_details`,
`delete_finetune`, `credits`) are called through `ProviderClient.request_json`, so their
errors are the client's: a refused key is `KeyRejected`, an endpoint the provider no
longer serves is `EndpointWithdrawn`.

A training folder is checked in full before anything is sent: 1 to 20 images (`.jpg`,
`.jpeg`, `.png`, `.webp`) directly in the folder, each readable by Pillow, at most 50 MB
and at least 256 px on its short side. Every problem is listed with its file and how to
fix it. Caption files (`NAME.txt` beside `NAME.png`) go into the zip with their image;
hidden files (`.DS_Store`) are left out.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from pipeline.errors import InputError, ProviderUnavailable
from pipeline.provider import ProviderClient

FINETUNE_MODES = ("character", "product", "style", "general")
FINETUNE_TYPES = ("full", "lora")
MIN_ITERATIONS, MAX_ITERATIONS, DEFAULT_ITERATIONS = 100, 1000, 300
MAX_TRAINING_IMAGES = 20
MAX_TRAINING_IMAGE_BYTES = 50 * 1024 * 1024
MIN_TRAINING_SHORT_SIDE_PX = 256
TRAINING_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CAPTION_SUFFIX = ".txt"
_SUFFIXES_TEXT = "/".join(TRAINING_IMAGE_SUFFIXES)


@dataclass(frozen=True)
class FinetuneInfo:
    """A finetune as `finetune_details` describes it; what the provider leaves out is None."""

    id: str
    comment: str | None = None
    trigger_word: str | None = None
    mode: str | None = None
    type: str | None = None
    iterations: int | None = None
    status: str | None = None
    created_at: str | None = None

    @classmethod
    def from_details(cls, finetune_id: str, details: Mapping[str, Any]) -> FinetuneInfo:
        iterations = details.get("iterations")
        return cls(
            id=_text(details.get("finetune_id")) or finetune_id,
            comment=_text(details.get("finetune_comment")),
            trigger_word=_text(details.get("trigger_word")),
            mode=_text(details.get("mode")),
            type=_text(details.get("finetune_type")),
            iterations=iterations if type(iterations) is int else None,
            status=_text(details.get("status")),
            created_at=_text(details.get("created_at")),
        )

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str | int | float) and value != "" else None


def my_finetunes(client: ProviderClient) -> list[str]:
    """The ids of the account's finetunes, as the provider lists them."""
    answer = client.request_json("GET", "my_finetunes", what="the finetune list")
    ids = answer.get("finetunes")
    if not isinstance(ids, list):
        raise ProviderUnavailable("provider's my_finetunes answer has no finetunes list")
    return [str(each) for each in ids]


def finetune_details(client: ProviderClient, finetune_id: str) -> FinetuneInfo:
    """One finetune's settings and status. An id the account does not have is
    `ProviderRejected` (404 with the provider's message)."""
    answer = client.request_json(
        "GET", "finetune_details", what="finetune details", params={"finetune_id": finetune_id}
    )
    details = answer.get("finetune_details")
    if not isinstance(details, dict):
        raise ProviderUnavailable("provider's finetune_details answer has no finetune_details")
    return FinetuneInfo.from_details(finetune_id, details)


def delete_finetune(client: ProviderClient, finetune_id: str) -> None:
    """Delete one of the account's finetunes (it cannot be undone)."""
    client.request_json(
        "POST", "delete_finetune", what="finetune deletion", body={"finetune_id": finetune_id}
    )


def credits(client: ProviderClient) -> float:
    """The account's balance in credits (1 credit = $0.01)."""
    answer = client.request_json("GET", "credits", what="the credits balance")
    balance = answer.get("credits")
    if not isinstance(balance, int | float) or isinstance(balance, bool):
        raise ProviderUnavailable("provider's credits answer has no credits number")
    return float(balance)


@dataclass(frozen=True)
class TrainingProblem:
    """One thing wrong with a training folder: the file, what, and how to fix it."""

    file: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message} ({self.hint})"


@dataclass(frozen=True)
class TrainingFolder:
    """A training folder's images and caption files, and its problems (none: usable)."""

    path: Path
    images: tuple[Path, ...]
    captions: tuple[Path, ...]
    problems: tuple[TrainingProblem, ...]


def check_training_folder(folder: Path) -> TrainingFolder:
    """Read `folder` without sending anything: its images, captions and every problem."""
    if not folder.is_dir():
        problem = TrainingProblem(
            str(folder), "is not a folder", f"name a folder holding the {_SUFFIXES_TEXT} images"
        )
        return TrainingFolder(folder, (), (), (problem,))
    entries = sorted(path for path in folder.iterdir() if not path.name.startswith("."))
    images = [path for path in entries if _is_image_name(path)]
    stems = {path.stem for path in images}
    captions = [path for path in entries if _is_caption(path, stems)]
    count_problem = _count_problem(folder, len(images))
    problems = [count_problem] if count_problem is not None else []
    for path in entries:
        if path not in images and path not in captions:
            problems.append(_stray_problem(path))
    for path in images:
        problems.extend(_image_problems(path))
    return TrainingFolder(folder, tuple(images), tuple(captions), tuple(problems))


def training_zip(folder: Path) -> tuple[bytes, int]:
    """The zip of `folder`'s images and captions, and how many images it holds;
    `InputError` lists every problem of the folder when it has any."""
    checked = check_training_folder(folder)
    if checked.problems:
        count = len(checked.problems)
        listing = "\n".join(f"  {problem}" for problem in checked.problems)
        raise InputError(
            f"the training folder {folder} has {count} problem{'' if count == 1 else 's'}:\n"
            f"{listing}"
        )
    return zip_files([*checked.images, *checked.captions]), len(checked.images)


def zip_files(paths: Sequence[Path]) -> bytes:
    """The files as one zip, each under its own name; images are stored as they are
    (already compressed), captions deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in paths:
            method = zipfile.ZIP_DEFLATED if path.suffix == CAPTION_SUFFIX else zipfile.ZIP_STORED
            archive.write(path, arcname=path.name, compress_type=method)
    return buffer.getvalue()


def _is_image_name(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TRAINING_IMAGE_SUFFIXES


def _is_caption(path: Path, image_stems: set[str]) -> bool:
    return path.is_file() and path.suffix.lower() == CAPTION_SUFFIX and path.stem in image_stems


def _count_problem(folder: Path, count: int) -> TrainingProblem | None:
    if count == 0:
        return TrainingProblem(
            str(folder),
            "holds no training images",
            f"put 1 to {MAX_TRAINING_IMAGES} {_SUFFIXES_TEXT} images directly in it",
        )
    if count > MAX_TRAINING_IMAGES:
        return TrainingProblem(
            str(folder),
            f"holds {count} images, more than the {MAX_TRAINING_IMAGES} a finetune takes",
            f"move {count - MAX_TRAINING_IMAGES} of them out of the folder",
        )
    return None


def _stray_problem(path: Path) -> TrainingProblem:
    if path.is_dir():
        return TrainingProblem(
            path.name, "is a folder", "put every training image directly in the training folder"
        )
    if path.suffix.lower() == CAPTION_SUFFIX:
        return TrainingProblem(
            path.name,
            "is a caption file with no image of the same name",
            "name it after its image (photo.png → photo.txt) or move it out",
        )
    return TrainingProblem(
        path.name,
        f"is not a {_SUFFIXES_TEXT} image",
        "convert it to PNG or JPEG, or move it out of the folder",
    )


def _image_problems(path: Path) -> list[TrainingProblem]:
    """What is wrong with one image: its size on disk, its decoding, its short side."""
    size_bytes = path.stat().st_size
    if size_bytes > MAX_TRAINING_IMAGE_BYTES:
        megabytes = size_bytes / 1024 / 1024
        return [
            TrainingProblem(
                path.name,
                f"is {megabytes:.0f} MB, over the 50 MB limit",
                "save it smaller (lower JPEG quality or fewer pixels)",
            )
        ]
    try:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return [
            TrainingProblem(
                path.name,
                "cannot be read as an image",
                "open and save it again as PNG or JPEG, or move it out of the folder",
            )
        ]
    if min(width, height) < MIN_TRAINING_SHORT_SIDE_PX:
        return [
            TrainingProblem(
                path.name,
                f"is {width}x{height} px, under {MIN_TRAINING_SHORT_SIDE_PX} px on its short side",
                f"use a larger original (at least {MIN_TRAINING_SHORT_SIDE_PX} px on each side)",
            )
        ]
    return []
