"""Compare-and-swap object storage: S3 in AWS, a directory locally, one interface and one guarantee.

Every read returns an opaque version tag (the S3 ETag, or a content hash locally); every write can be
conditional on it. A lost race raises PreconditionFailed; ``compare_and_swap`` owns what happens then
(re-run the caller's one attempt: re-read, re-merge, write; jittered backoff; a bounded number of
losses, then ContentionError), so concurrent writers never lose each other's updates and every store
retries the same way.

Backend failures are translated here, once: anything S3 or the file system raises becomes a StoreError
naming the location and the cause.

Locally, ``<root>/.stockpipe/`` holds the lock and temporary files, outside every dataset tree: readers
that glob ``prices/daily/**`` (DuckDB reads every file a ``**`` matches, dot-names included) see only
data files, and those are created 0644 like any file a user writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from botocore.exceptions import BotoCoreError

from stockpipe.errors import ContentionError, PreconditionFailed, StoreError

T = TypeVar("T")

# The one retry policy of every compare-and-swap write (PriceStore, ProgressStore).
DEFAULT_MAX_ATTEMPTS: Final = 20
BACKOFF_BASE_SECONDS: Final = 0.01
BACKOFF_MAX_SECONDS: Final = 1.0
# Locally: lock and temporary files live here, beside (never inside) the data trees.
LOCAL_INTERNAL_DIR: Final = ".stockpipe"
LOCAL_FILE_MODE: Final = 0o644
_LEGACY_SUFFIXES: Final = (".lock", ".tmp")  # what earlier versions left inside the data trees


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


class DelegatingStore:
    """An ObjectStore that forwards every call to ``inner``: the one base for stores that add a step.

    A subclass overrides only the calls it changes (the Glue partition registrar overrides ``put``; test
    doubles watch or interrupt calls) and everything else keeps the inner store's exact behaviour,
    compare-and-swap included.
    """

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    def get(self, key: str) -> StoredObject | None:
        return self.inner.get(key)

    def put(
        self,
        key: str,
        body: bytes,
        *,
        expected_version: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        return self.inner.put(key, body, expected_version=expected_version, content_type=content_type)

    def list_keys(self, prefix: str) -> Iterator[str]:
        return self.inner.list_keys(prefix)

    def describe(self, key: str) -> str:
        return self.inner.describe(key)


def compare_and_swap(
    attempt: Callable[[int], T],
    *,
    what: str,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt`` until its conditional write does not lose a race; return what it returns.

    ``attempt(n)`` (``n``: races lost so far) reads, changes and writes with ``expected_version``, and
    raises PreconditionFailed when another writer got there first; anything else it raises ends the
    loop. Between losses it waits with full-jitter exponential backoff (BACKOFF_BASE_SECONDS doubling,
    at most BACKOFF_MAX_SECONDS), never after the last one. After ``max_attempts`` losses:
    ContentionError naming ``what``.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    for lost in range(max_attempts):
        try:
            return attempt(lost)
        except PreconditionFailed:
            if lost + 1 < max_attempts:
                sleep(random.uniform(0, min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**lost)))
    raise ContentionError(f"gave up writing {what}: {max_attempts} attempts, each lost to another writer")


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
            return StoredObject(response["Body"].read(), response["ETag"])
        except self.client.exceptions.NoSuchKey:
            return None
        except (self.client.exceptions.ClientError, BotoCoreError, OSError) as exc:
            cause = _cause(exc)
        raise StoreError(f"reading {self.describe(key)} failed: {cause}")

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
            raise StoreError(f"writing {self.describe(key)} failed: {_cause(exc)}") from None
        except (BotoCoreError, OSError) as exc:
            raise StoreError(f"writing {self.describe(key)} failed: {_cause(exc)}") from None
        return response["ETag"]

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]
        except (self.client.exceptions.ClientError, BotoCoreError, OSError) as exc:
            cause = _cause(exc)
        else:
            return
        raise StoreError(f"listing {self.describe(prefix)} failed: {cause}")

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


class LocalObjectStore:
    """The same layout and compare-and-swap guarantee in a local directory.

    A per-key lock file serialises the check-and-rename; readers never see partial files because
    writes go to a temporary file that is renamed into place. Both live under LOCAL_INTERNAL_DIR.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._internal = self.root / LOCAL_INTERNAL_DIR

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or path.is_relative_to(self._internal.resolve()):
            raise StoreError(f"key {key!r} is outside the store's data")
        return path

    def get(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"reading {path} failed: {_cause(exc)}") from None
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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked(key):
                current = _content_version(path.read_bytes()) if path.exists() else None
                if current != expected_version:
                    raise PreconditionFailed(f"{self.describe(key)} changed while we wrote it")
                self._atomic_write(path, body)
                # Earlier versions kept an empty lock file beside the object, where readers choke on it.
                path.with_name(path.name + _LEGACY_SUFFIXES[0]).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"writing {path} failed: {_cause(exc)}") from None
        return _content_version(body)

    def list_keys(self, prefix: str) -> Iterator[str]:
        # Walk only the deepest directory the prefix names, not the whole store.
        base = self.root / prefix.rpartition("/")[0]
        if not base.is_dir():
            return
        keys = (
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file()
            and not path.is_relative_to(self._internal)
            and not path.name.endswith(_LEGACY_SUFFIXES)
        )
        yield from sorted(key for key in keys if key.startswith(prefix))

    def describe(self, key: str) -> str:
        return str(self.root / key)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        locks = self._internal / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest() + ".lock"
        with open(locks / name, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _atomic_write(self, path: Path, body: bytes) -> None:
        temporary = self._internal / "tmp"
        temporary.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=temporary, prefix=path.name, suffix=".tmp")
        try:
            os.fchmod(fd, LOCAL_FILE_MODE)  # mkstemp creates 0600; a dataset is for its readers
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


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


def _cause(exc: BaseException) -> str:
    """An S3 error code or the OS's words, for a message that names the location and the cause."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Code"):
        return str(response["Error"]["Code"])
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
