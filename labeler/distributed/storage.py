"""Objects in any fsspec file system: listed on the driver, read and written by workers.

Why writes are safe everywhere: on an object store (S3, OSS, COS, GCS, MinIO...) a PUT, and a
multipart upload, become visible only once complete, so readers see the old object or the new
one. File systems that can show a half-written file get a temporary name and a rename: the
local disk goes through the local engine's own :func:`labeler.batch.write_atomic`.
"""

from __future__ import annotations

import functools
import importlib
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..batch import _TEMP_MARK, read_regular, write_atomic
from . import MissingExtraError

__all__ = ["Store", "require"]

#: fsspec protocols whose writes are all-or-nothing (a single PUT, or a completed multipart upload)
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "oss", "cos", "cosn", "abfs", "az", "adl", "memory"})
EXTRA_HINT = "pip install 'aigc-labeler[ray,s3]'"


def require(module: str) -> Any:
    """Import an optional dependency, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        needs = module.split(".")[0]
        raise MissingExtraError(f"the distributed engine needs {needs}: {EXTRA_HINT} ({exc})") from None


class Store:
    """One root (``s3://bucket/in/``, ``/data/in``, ``oss://...``) and how to reach it.

    Picklable by design: a task gets the URL and the storage options (an endpoint, never a
    secret: credentials come from each worker's environment), and opens the file system itself.
    """

    def __init__(
        self, url: str, options: Mapping[str, Any] | None = None, single: bool | None = None
    ) -> None:
        self.url = url
        self.options = dict(options or {})
        if single is not None:  # known on the driver: workers don't ask again
            self.__dict__["single"] = single

    def __reduce__(self) -> tuple[Any, ...]:
        return (Store, (self.url, self.options, self.__dict__.get("single")))

    @functools.cached_property
    def _opened(self) -> tuple[Any, str]:
        core = require("fsspec.core")
        options = dict(self.options)
        if self.url.startswith(("s3://", "s3a://")):
            # one GET per object, no HEAD first: objects are read whole and keys run in parallel
            options.setdefault("max_concurrency", 1)
        try:
            fs, root = core.url_to_fs(self.url, **options)
        except ImportError as exc:  # fsspec names the package a protocol needs (s3fs, ossfs...)
            raise MissingExtraError(f"{self.url}: {exc} ({EXTRA_HINT})") from None
        return fs, root.rstrip("/")

    @property
    def fs(self) -> Any:
        return self._opened[0]

    @property
    def root(self) -> str:
        return self._opened[1]

    @property
    def local(self) -> bool:
        return "file" in _protocols(self.fs)

    @property
    def atomic_put(self) -> bool:
        return bool(OBJECT_STORES & _protocols(self.fs))

    @functools.cached_property
    def single(self) -> bool:
        """The root is one object, not a prefix (asked once per process: a HEAD on a store)."""
        return bool(self.fs.isfile(self.root))

    def display(self, path: str) -> str:
        """A path as the user would write it: with its scheme (``s3://bucket/key``)."""
        return path if self.local else str(self.fs.unstrip_protocol(path))

    def names(self, clean: bool = True) -> Iterator[str]:
        """Every object under the root (or the root itself, if it is one), as a path relative to
        it, sorted. Dot-names are passed over as the local engine does; on file systems where we
        rename, the temporaries of a killed run are removed (``clean``: as the local engine, a
        run assumes it is the only one writing there)."""
        fs, root = self.fs, self.root
        if self.single:
            yield root.rpartition("/")[2]
            return
        for path in sorted(fs.find(root)):
            rel = path[len(root) :].lstrip("/")
            name = rel.rpartition("/")[2]
            if any(part.startswith(".") for part in rel.split("/")):
                if clean and _TEMP_MARK in name and not self.atomic_put:
                    fs.rm_file(path)  # debris of a killed run: ours to remove
                continue
            yield rel

    def path(self, rel: str) -> str:
        """The full path of ``rel`` under the root (the root itself when it is the file)."""
        if self.single and self.root.rpartition("/")[2] == rel:
            return self.root
        return f"{self.root}/{rel}"

    def read(self, path: str) -> bytes:
        """The whole object (one GET on a store). Locally, only regular files are opened."""
        if self.local:
            return read_regular(Path(path), follow_symlinks=True)[0]
        data: bytes = self.fs.cat_file(path)
        return data

    def read_if_exists(self, path: str) -> bytes | None:
        try:
            return self.read(path)
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes, *, like: str | None = None) -> None:
        """Write ``data`` at ``path`` so that no reader ever sees half of it. Locally the result
        keeps the permission bits of ``like`` (its source), as ``labeler apply`` does."""
        fs = self.fs
        if self.local:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            mode = os.stat(like).st_mode if like else None
            write_atomic(target, data, mode)
        elif self.atomic_put:
            fs.pipe_file(path, data)
        else:  # e.g. SFTP, HDFS, WebDAV: a half-written file would be visible, so rename
            parent, _, name = path.rpartition("/")
            tmp = f"{parent}/.{name}{_TEMP_MARK}{uuid.uuid4().hex}"
            fs.pipe_file(tmp, data)
            try:
                fs.mv(tmp, path)
            except BaseException:
                fs.rm_file(tmp)
                raise


def _protocols(fs: Any) -> set[str]:
    protocol = fs.protocol
    return {protocol} if isinstance(protocol, str) else set(protocol)
