"""Every piece of state the service keeps, one store each, all under one data directory:

    images/       originals, records (analyses, reviews), segmentation maps, renderings (images.py)
    index.db      the gallery index over the records, kept current by every merge (gallery.py)
    access.db     API tokens and the audit log (access.py); people, sessions, reveals, exposure
                  (people.py, passwords.py)
    jobs.db       collection jobs and their items (jobs.py)
    annotation.db the labels people gave on the labelling page (labels.py)
    videos/       videos sent, their state, censored copies and timelines (videos.py)

SQLite files are opened one way (database.py). Stores import nothing above them: not the
serving pipeline, not the web app (tests/test_layout.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.stores.access import AccessStore
from pipeline.stores.gallery import GalleryIndex
from pipeline.stores.images import FileSystemStore
from pipeline.stores.jobs import JobStore
from pipeline.stores.labels import LabelDecisions
from pipeline.stores.people import People
from pipeline.stores.records import gore_threshold
from pipeline.stores.videos import VideoStore


@dataclass(frozen=True)
class Stores:
    images: FileSystemStore
    gallery: GalleryIndex
    access: AccessStore
    people: People
    jobs: JobStore
    labels: LabelDecisions
    videos: VideoStore

    @classmethod
    def open(cls, data_dir: Path, threshold: float | None = None) -> Stores:
        """Every store under `data_dir`; `threshold`: the deployment's gore threshold (unset: each
        classifier's own), which the gallery index files its verdicts at."""
        data_dir = Path(data_dir)
        gallery = GalleryIndex.in_data_dir(data_dir, lambda analysis: gore_threshold(analysis, threshold))
        return cls(
            images=FileSystemStore(data_dir, index=gallery),
            gallery=gallery,
            access=AccessStore.in_data_dir(data_dir),
            people=People.in_data_dir(data_dir),
            jobs=JobStore.in_data_dir(data_dir),
            labels=LabelDecisions.in_data_dir(data_dir),
            videos=VideoStore(data_dir),
        )


def image_store(data_dir: Path, threshold: float | None = None) -> FileSystemStore:
    """The image store with its gallery index, for a writer that needs nothing else (the offline command)."""
    gallery = GalleryIndex.in_data_dir(Path(data_dir), lambda analysis: gore_threshold(analysis, threshold))
    return FileSystemStore(data_dir, index=gallery)


__all__ = ["Stores", "image_store"]
