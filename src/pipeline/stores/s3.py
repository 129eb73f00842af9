"""An S3-compatible bucket, through the S3 API only (boto3), so the same code runs against AWS S3
and self-hosted stores (Ceph RGW, SeaweedFS, Garage); the tests use moto's standalone server.

`GORE_OBJECT_STORE=s3://bucket/prefix` names the bucket and a key prefix; `GORE_S3_ENDPOINT_URL`
the endpoint of a store other than AWS; credentials and region come from the standard AWS chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION, a profile, or an instance role).
The objects stored are all written once and never changed (originals by their SHA-256, renderings
named by what decides their pixels): a write is a conditional PUT (`If-None-Match: *`) that leaves
an object already there as it is, in one round trip (a store without conditional writes is sent a
plain PUT: the bytes under one name are the same bytes anyway). A store that cannot be
reached is a 503 that says so; nothing is half-written (a PUT lands whole or not at all).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.errors import Unavailable

log = logging.getLogger(__name__)


@dataclass
class S3Objects:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    _clients: dict[int, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_url(cls, url: str, endpoint_url: str | None = None) -> S3Objects:
        """`s3://bucket/prefix`."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"an object store is s3://bucket/prefix, not {url!r}")
        return cls(parsed.netloc, parsed.path.strip("/"), endpoint_url)

    @property
    def client(self) -> Any:
        """One client per process (a client made before BentoML forks its workers is not reused)."""
        with self._lock:
            client = self._clients.get(os.getpid())
            if client is None:
                import boto3
                from botocore.config import Config

                config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
                client = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, config=config)
                self._clients = {os.getpid(): client}
            return client

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, what: str, call, *args, **kwargs) -> Any:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call(*args, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise KeyError(what) from None
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise FileExistsError(what) from None
            if code == "NotImplemented":
                raise NotImplementedError(what) from None
            log.warning("the object store refused to %s: %s", what, error)
            raise Unavailable(f"the object store refused to {what} ({code}); try again shortly") from None
        except (BotoCoreError, Boto3Error) as error:  # Boto3Error: a managed transfer that failed.
            log.warning("the object store failed to %s: %s", what, error)  # The whole story, for the operator.
            raise Unavailable(
                f"the object store is not reachable to {what} ({type(error).__name__}); try again shortly"
            ) from None

    def ensure_bucket(self) -> None:
        """The bucket, made if it does not exist (a store that forbids making buckets: make it first)."""
        try:
            self._call("find the bucket", self.client.head_bucket, Bucket=self.bucket)
        except KeyError:
            self._call("make the bucket", self.client.create_bucket, Bucket=self.bucket)

    def put(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Written once: an object already under `name` is kept."""
        put = {"Bucket": self.bucket, "Key": self.key(name), "Body": data, "ContentType": content_type}
        try:
            self._call(f"store {name}", self.client.put_object, **put, IfNoneMatch="*")
        except FileExistsError:
            pass  # Already there, or being written with the same bytes.
        except NotImplementedError:
            self._call(f"store {name}", self.client.put_object, **put)

    def put_file(self, name: str, path: Path) -> None:
        """A file (a video: gigabytes) uploaded in parts, never whole in memory."""
        self._call(f"store {name}", self.client.upload_file, str(path), self.bucket, self.key(name))

    def get_file(self, name: str, path: Path) -> bool:
        """The object downloaded into `path` (in parts); False when there is none."""
        try:
            self._call(f"read {name}", self.client.download_file, self.bucket, self.key(name), str(path))
        except KeyError:
            return False
        return True

    def get(self, name: str) -> bytes | None:
        try:
            answer = self._call(f"read {name}", self.client.get_object, Bucket=self.bucket, Key=self.key(name))
        except KeyError:
            return None
        return answer["Body"].read()

    def exists(self, name: str) -> bool:
        try:
            self._call(f"look for {name}", self.client.head_object, Bucket=self.bucket, Key=self.key(name))
        except KeyError:
            return False
        return True

    def names(self, under: str) -> Iterator[str]:
        """Names (without the store's prefix) of the objects whose names start with `under`."""
        paginator = self.client.get_paginator("list_objects_v2")
        start = len(self.key(""))
        listing = paginator.paginate(Bucket=self.bucket, Prefix=self.key(under))
        pages = self._call(f"list {under}", lambda: list(listing))
        for page in pages:
            for item in page.get("Contents", ()):
                yield item["Key"][start:]
