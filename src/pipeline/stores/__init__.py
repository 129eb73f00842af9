"""Every piece of state the service keeps, one store each, in one of two modes.

Embedded (the default: nothing to install), all under one data directory:

    images/       originals, records (analyses, reviews), segmentation maps, renderings (images.py)
    index.db      the gallery index over the records, kept current by every merge (gallery.py)
    access.db     API tokens and the audit log (access.py); people, sessions, reveals, exposure
                  (people.py, passwords.py)
    jobs.db       collection jobs and their items (jobs.py)
    annotation.db the labels people gave on the labelling page (labels.py)
    hash_lists.db hash lists of known content, imported and made from our reviews (hash_lists.py)
    videos/       videos sent, their state, censored copies and timelines (videos.py)

Shared (`GORE_DATABASE_URL` and `GORE_OBJECT_STORE`), for several Censor replicas: the same
tables in one PostgreSQL database, the records too (shared_images.py), and the files the records
name in an S3-compatible bucket (s3.py); videos the same way (shared_videos.py). The data directory
keeps only what is a replica's own: scratch space, and its copies of the videos it reads.

Tables are opened one way in either mode (database.py). Stores import nothing above them: not
the serving pipeline, not the web app (tests/test_layout.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pipeline.stores.access import AccessStore
from pipeline.stores.database import PostgresDatabase
from pipeline.stores.gallery import GalleryIndex
from pipeline.stores.hash_lists import HashLists
from pipeline.stores.images import FileSystemStore, ImageStore
from pipeline.stores.jobs import JobStore
from pipeline.stores.labels import LabelDecisions
from pipeline.stores.people import People
from pipeline.stores.records import gore_threshold
from pipeline.stores.s3 import S3Objects
from pipeline.stores.shared_images import SharedImageStore
from pipeline.stores.shared_videos import SharedVideoStore
from pipeline.stores.videos import VideoStore


@dataclass(frozen=True)
class Shared:
    """Where the shared mode keeps things: a PostgreSQL URL and an S3 bucket (s3://bucket/prefix)."""

    database_url: str
    object_store: str
    s3_endpoint_url: str | None = None
    lease_s: float = 60.0
    """How long a video's claim lasts unless its worker renews it."""

    @classmethod
    def of(cls, settings: Any) -> Shared | None:
        """From the settings (GORE_DATABASE_URL, GORE_OBJECT_STORE, GORE_S3_ENDPOINT_URL); None: embedded."""
        if settings.database_url is None:
            return None
        return cls(settings.database_url, settings.object_store, settings.s3_endpoint_url, settings.lease_s)

    @cached_property
    def database(self) -> PostgresDatabase:
        return PostgresDatabase(self.database_url)

    @cached_property
    def bucket(self) -> S3Objects:
        """The object store, made sure of once (it is made if missing) for every store that uses it."""
        objects = S3Objects.from_url(self.object_store, self.s3_endpoint_url)
        objects.ensure_bucket()
        return objects


@dataclass(frozen=True)
class Stores:
    images: FileSystemStore | SharedImageStore
    gallery: GalleryIndex
    access: AccessStore
    people: People
    jobs: JobStore
    labels: LabelDecisions
    videos: VideoStore
    hash_lists: HashLists
    shared: bool = False

    @classmethod
    def open(cls, data_dir: Path, threshold: float | None = None, shared: Shared | None = None) -> Stores:
        """Every store: under `data_dir`, or in the `shared` database and bucket. `threshold`: the
        deployment's gore threshold (unset: each classifier's own), which the gallery index files
        its verdicts at."""
        data_dir = Path(data_dir)
        url = shared.database_url if shared else None
        gallery = GalleryIndex.open(data_dir, lambda analysis: gore_threshold(analysis, threshold), url)
        return cls(
            images=open_images(data_dir, gallery, shared),
            gallery=gallery,
            access=AccessStore.open(data_dir, url),
            people=People.open(data_dir, url),
            jobs=JobStore.open(data_dir, url),
            labels=LabelDecisions.open(data_dir, url),
            videos=open_videos(data_dir, shared),
            hash_lists=HashLists.open(data_dir, url),
            shared=shared is not None,
        )


def open_images(data_dir: Path, gallery: GalleryIndex, shared: Shared | None) -> FileSystemStore | SharedImageStore:
    if shared is None:
        return FileSystemStore(data_dir, index=gallery)
    return SharedImageStore(shared.database, shared.bucket, index=gallery)


def open_videos(data_dir: Path, shared: Shared | None) -> VideoStore:
    if shared is None:
        return VideoStore(data_dir)
    return SharedVideoStore(data_dir, shared.database, shared.bucket, shared.lease_s)


def image_store(
    data_dir: Path, threshold: float | None = None, shared: Shared | None = None
) -> FileSystemStore | SharedImageStore:
    """The image store with its gallery index, for a writer that needs nothing else (the offline command)."""
    url = shared.database_url if shared else None
    gallery = GalleryIndex.open(Path(data_dir), lambda analysis: gore_threshold(analysis, threshold), url)
    return open_images(Path(data_dir), gallery, shared)


__all__ = ["ImageStore", "Shared", "Stores", "image_store"]
