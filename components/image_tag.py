"""Image tags from the content of the build inputs, so tags are unique under IMMUTABLE ECR tags."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

SHARED_PACKAGE = "stockpipe"
# Files that never reach an image (and would make the tag change for nothing).
_IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "tests"})
_IGNORED_SUFFIXES = (".pyc", ".pyo")


def _files(root: Path, folder: str) -> Iterable[Path]:
    base = root / folder
    if not base.exists():
        return []
    return (
        path
        for path in base.rglob("*")
        if path.is_file()
        and not path.name.endswith(_IGNORED_SUFFIXES)
        and not _IGNORED_DIRS.intersection(path.relative_to(root).parts)
    )


def build_inputs(context: Path, lambda_folder: str) -> list[Path]:
    """The files that decide an image's content: the shared package, the Lambda's folder, .dockerignore."""
    paths = [*_files(context, SHARED_PACKAGE), *_files(context, lambda_folder)]
    ignore = context / ".dockerignore"
    if ignore.is_file():
        paths.append(ignore)
    return sorted(set(paths))


def image_tag(context: Path, lambda_folder: str) -> str:
    """``src-<20 hex>``: a hash over each input's path (relative to the context) and bytes."""
    digest = hashlib.sha256()
    for path in build_inputs(context, lambda_folder):
        relative = path.relative_to(context).as_posix().encode()
        digest.update(len(relative).to_bytes(4, "big") + relative)
        body = path.read_bytes()
        digest.update(len(body).to_bytes(8, "big") + body)
    return f"src-{digest.hexdigest()[:20]}"
