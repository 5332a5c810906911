"""Compare-and-swap object storage: S3 in AWS, a directory locally, one interface and one guarantee.

Every read returns an opaque version tag (the S3 ETag, or a content hash locally); every write can be
conditional on it. A lost race raises PreconditionFailed and the caller re-reads, merges and retries,
so concurrent writers never lose each other's updates.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from stockpipe.errors import PreconditionFailed, StoreError


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    version: str


class ObjectStore(Protocol):
    def get(self, key: str) -> StoredObject | None:
        """The object at key, or None when there is none."""

    def put(
        self,
        key: str,
        body: bytes,
        *,
        expected_version: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        """Write body only if the stored version is still expected_version (None: only if absent).

        Returns the new version; raises PreconditionFailed when another writer got there first.
        """

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under prefix, in lexicographic order."""

    def describe(self, key: str) -> str:
        """A human-readable location (s3://bucket/key or a path) for messages."""


_LOST_RACE_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class S3ObjectStore:
    """Conditional writes with IfNoneMatch="*" (create) and IfMatch=<etag> (update)."""

    def __init__(self, bucket: str, client: Any, prefix: str = "") -> None:
        self.bucket = bucket
        self.client = client
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def get(self, key: str) -> StoredObject | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except self.client.exceptions.NoSuchKey:
            return None
        return StoredObject(response["Body"].read(), response["ETag"])

    def put(
        self,
        key: str,
        body: bytes,
        *,
        expected_version: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        condition = {"IfMatch": expected_version} if expected_version else {"IfNoneMatch": "*"}
        try:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=body,
                ContentType=content_type,
                **condition,
            )
        except self.client.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # 412: the ETag moved; 409: a concurrent conditional write; 404 on IfMatch: deleted meanwhile.
            lost_race = status in (409, 412) or error.get("Code") in _LOST_RACE_CODES
            if lost_race or (expected_version and error.get("Code") == "NoSuchKey"):
                raise PreconditionFailed(f"{self.describe(key)} changed while we wrote it") from None
            raise StoreError(f"writing {self.describe(key)} failed: {error.get('Code', exc)}") from None
        return response["ETag"]

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


class LocalObjectStore:
    """The same layout and compare-and-swap guarantee in a local directory.

    A per-key lock file serialises the check-and-rename; readers never see partial files because
    writes go to a temporary file that is renamed into place.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StoreError(f"key {key!r} escapes the store root")
        return path

    def get(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return None
        return StoredObject(body, _content_version(body))

    def put(
        self,
        key: str,
        body: bytes,
        *,
        expected_version: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.with_name(path.name + ".lock")):
            current = _content_version(path.read_bytes()) if path.exists() else None
            if current != expected_version:
                raise PreconditionFailed(f"{self.describe(key)} changed while we wrote it")
            _atomic_write(path, body)
        return _content_version(body)

    def list_keys(self, prefix: str) -> Iterator[str]:
        # Walk only the deepest directory the prefix names, not the whole store.
        base = self.root / prefix.rpartition("/")[0]
        if not base.is_dir():
            return
        keys = (
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.endswith((".lock", ".tmp"))
        )
        yield from sorted(key for key in keys if key.startswith(prefix))

    def describe(self, key: str) -> str:
        return str(self.root / key)


def open_store(location: str, s3_client: Any = None) -> ObjectStore:
    """``s3://bucket[/prefix]`` or a local directory path."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {location!r}")
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3ObjectStore(bucket, s3_client, prefix)
    return LocalObjectStore(location)


def _content_version(body: bytes) -> str:
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


def _atomic_write(path: Path, body: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
