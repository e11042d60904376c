"""S3-compatible object storage for the segments of an installation's stores (AWS S3, MinIO,
R2, SeaweedFS, ...): `s3://bucket/prefix`, with the AWS SDK's own configuration
(AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or a profile),
so that every S3-compatible store and every deployment tool works unchanged.

Objects are only ever created, never overwritten: every write is `If-None-Match: *`, and a
key that exists already is AlreadyExists. A store's segments are written as parts, one object
for what each commit appended (core/storage/store_write.py), under keys that no other write
ever uses; the catalog names the parts that count.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from mailkeep.core.errors import MailkeepError

RETRIES = 5  # of a request that failed on the way (the SDK's standard retry mode)
TIMEOUT_S = 30


class ObjectsUnavailable(MailkeepError):
    """The object store cannot be reached, or refused the request (credentials, bucket)."""


class AlreadyExists(MailkeepError):
    """An object of this key exists already (objects are never overwritten)."""


class BadObjectsUrl(ValueError):
    """--objects names nothing mailkeep can use."""


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, prefix without a trailing slash) of an s3:// URL."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise BadObjectsUrl("--objects takes an S3 URL (s3://bucket or s3://bucket/prefix); "
                            "the endpoint, region and keys come from the AWS environment "
                            "(AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, ...)")
    return parts.netloc, parts.path.strip("/")


class ObjectStore:
    """One bucket and prefix. Thread-safe (the SDK's client is)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bucket, self.prefix = parse_url(url)
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config
                self._client = boto3.session.Session().client(
                    "s3", config=Config(retries={"max_attempts": RETRIES, "mode": "standard"},
                                        connect_timeout=TIMEOUT_S, read_timeout=TIMEOUT_S))
            return self._client

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _failed(self, exc: Exception, what: str) -> MailkeepError:
        code = ""
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return AlreadyExists(f"object {what} exists already")
        detail = code or type(exc).__name__
        return ObjectsUnavailable(f"the object store {self.bucket} refused or failed to "
                                  f"{what}: {detail}")

    def put_new(self, name: str, data: bytes) -> None:
        """Create the object `name` with `data`; AlreadyExists if it is there."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data,
                                   IfNoneMatch="*")
        except Exception as exc:
            raise self._failed(exc, f"write {name}") from None

    def get(self, name: str, start: int = 0, end: int | None = None) -> bytes:
        """The object's bytes [start, end) (end None: to its end)."""
        extra: dict[str, str] = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(name), **extra)
            data: bytes = body["Body"].read()
            return data
        except Exception as exc:
            raise self._failed(exc, f"read {name}") from None

    def names(self, under: str) -> Iterator[str]:
        """The names of the objects under `under` (a prefix), in key order."""
        full = self.key(under)
        cut = len(self.key(""))
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full)
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])[cut:]
        except Exception as exc:
            raise self._failed(exc, f"list {under}") from None

    def delete(self, names: list[str]) -> None:
        for i in range(0, len(names), 1000):
            batch = [{"Key": self.key(n)} for n in names[i:i + 1000]]
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch,
                                                                       "Quiet": True})
            except Exception as exc:
                raise self._failed(exc, "delete objects") from None
