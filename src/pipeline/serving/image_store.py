"""The image store: originals, <id>.json metadata and censored children (thesis Appendix C).

Layout under the data directory, one folder per image id (SHA-256 of the uploaded bytes):

    images/<id>/original.<ext>   the bytes as uploaded
    images/<id>/<id>.json        the metadata (CensorResult)
    images/<id>/censored.png     the censored child, only when gore is true
    images/<id>/mask.png         the gore mask, only when gore is true

`ImageStore` is the interface the pipeline uses (whole objects in, whole objects out), so an
object-storage backend can stand in for `FileSystemStore`. On a file system every write goes
to a temporary file in the same folder and is renamed into place: readers never see half a
file, and two writers of the same id leave one whole version.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Literal, Protocol

from pipeline.errors import NotFound
from pipeline.serving.schemas import CensorResult

Artifact = Literal["censored", "mask"]
_ID = re.compile(r"^[0-9a-f]{64}$")


def check_id(image_id: str) -> str:
    if not _ID.fullmatch(image_id):
        raise NotFound(f"{image_id!r} is not an image id (64 lowercase hex characters, the SHA-256 of the file)")
    return image_id


class ImageStore(Protocol):
    def put_original(self, image_id: str, suffix: str, data: bytes) -> None: ...
    def put_artifact(self, image_id: str, artifact: Artifact, png: bytes) -> None: ...
    def put_metadata(self, result: CensorResult) -> None: ...
    def get_metadata(self, image_id: str) -> CensorResult | None: ...
    def get_artifact(self, image_id: str, artifact: Artifact) -> bytes: ...
    def delete_artifacts(self, image_id: str) -> None: ...


class FileSystemStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, image_id: str) -> Path:
        return self.root / "images" / check_id(image_id)

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; other readers (a web server, backups) need access.
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_original(self, image_id: str, suffix: str, data: bytes) -> None:
        path = self.folder(image_id) / f"original{suffix}"
        if not path.exists():  # Same id, same bytes: nothing to do.
            self._write(path, data)

    def put_artifact(self, image_id: str, artifact: Artifact, png: bytes) -> None:
        self._write(self.folder(image_id) / f"{artifact}.png", png)

    def put_metadata(self, result: CensorResult) -> None:
        self._write(self.folder(result.id) / f"{result.id}.json", result.model_dump_json(indent=2).encode())

    def get_metadata(self, image_id: str) -> CensorResult | None:
        path = self.folder(image_id) / f"{image_id}.json"
        if not path.exists():
            return None
        return CensorResult.model_validate_json(path.read_bytes())

    def get_artifact(self, image_id: str, artifact: Artifact) -> bytes:
        path = self.folder(image_id) / f"{artifact}.png"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"image {image_id} has no {artifact} image (it was not classified as gore, or is unknown)"
            ) from None

    def delete_artifacts(self, image_id: str) -> None:
        """A re-run that finds no gore must not leave an older censored child behind."""
        for artifact in ("censored", "mask"):
            (self.folder(image_id) / f"{artifact}.png").unlink(missing_ok=True)
