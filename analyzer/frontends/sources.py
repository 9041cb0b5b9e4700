"""Model sources: a path on disk, or ``REV:path`` — the file as it was at a git revision.

``REV:path`` follows git's own syntax (``git show REV:path``): the path is relative to the
repository root, ``REV:./path`` to the current directory, and ``:path`` is the index. The
file is read with ``git cat-file`` into a temporary directory (the working tree and the
index are never touched) under its own base name, so the frontends see a normal path with
the right extension. Messages and the report name the source as the user wrote it.

A source that exists on disk is always the file, even when its name contains ':'.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from analyzer.errors import CnnstatError
from analyzer.frontends.load import load_net
from analyzer.ir import Net


@dataclass(frozen=True)
class RevSource:
    """A file at a git revision: ``rev`` (empty for the index) and its ``path`` in the tree."""

    rev: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.rev}:{self.path}"


def parse_source(source: str, cwd: str | Path | None = None) -> RevSource | None:
    """``REV:path`` → a :class:`RevSource`; an existing file or a plain path → None."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    if ":" not in source or (base / source).exists():
        return None
    rev, _, path = source.partition(":")
    if not path:
        return None  # 'something:' names no file at a revision; let the frontend say so
    if len(rev) == 1 and rev.isalpha() and path[:1] in ("\\", "/"):
        return None  # a Windows drive letter (C:\models\net.prototxt)
    return RevSource(rev, path)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise CnnstatError("reading REV:path sources needs git, which is not installed") \
            from None


def read_revision(src: RevSource, cwd: str | Path | None = None) -> bytes:
    """The bytes of ``src.path`` at ``src.rev`` in the repository around ``cwd``."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    label = src.label
    if _git(["rev-parse", "--git-dir"], base).returncode != 0:
        raise CnnstatError(f"not inside a git repository ({base}), so '{src.rev}' cannot be "
                           "read as a revision (and no such file exists)", label)
    if src.rev and _git(["rev-parse", "--verify", "--quiet", "--end-of-options",
                         f"{src.rev}^{{tree}}"], base).returncode != 0:
        raise CnnstatError(f"no revision '{src.rev}' in this repository "
                           "(and no such file exists)", label)
    kind = _git(["cat-file", "-t", "--end-of-options", label], base)
    if kind.returncode != 0:
        at = f"at {src.rev}" if src.rev else "in the index"
        raise CnnstatError(f"'{src.path}' does not exist {at} (paths after ':' are relative to "
                           "the repository root, as in git; write REV:./path for one relative "
                           "to the current directory)", label)
    if kind.stdout.strip() != b"blob":
        raise CnnstatError(f"is a {kind.stdout.decode().strip()}, not a file", label)
    blob = _git(["cat-file", "blob", "--end-of-options", label], base)
    if blob.returncode != 0:  # pragma: no cover - the object was just found
        raise CnnstatError(f"git cat-file failed: {blob.stderr.decode().strip()}", label)
    return blob.stdout


@contextmanager
def local_path(source: str, cwd: str | Path | None = None) -> Iterator[tuple[str, str]]:
    """Yield (a path a frontend can open, the label to show) for ``source``.

    For ``REV:path`` the path is a temporary copy, removed on exit.
    """
    src = parse_source(source, cwd)
    if src is None:
        yield (source if cwd is None else str(Path(cwd) / source)), source
        return
    data = read_revision(src, cwd)
    name = PurePosixPath(src.path).name or "model"
    with tempfile.TemporaryDirectory(prefix="cnnstat-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        yield str(path), src.label


def _relabel(text: str, path: str, label: str) -> str:
    return text.replace(path, label) if path != label else text


def load_source(source: str, phase: str = "test", stages: tuple[str, ...] = (),
                level: int = 0, batch: int | None = None,
                shapes: dict[str, tuple[int, ...]] | None = None,
                cwd: str | Path | None = None) -> Net:
    """:func:`analyzer.frontends.load.load_net` for a path or a ``REV:path`` source.

    The returned net's ``path`` (and any message naming the file) is the source as given.
    """
    with local_path(source, cwd) as (path, label):
        try:
            net = load_net(path, phase=phase, stages=stages, level=level, batch=batch,
                           shapes=shapes)
        except CnnstatError as e:
            if path == label:
                raise
            raise CnnstatError(_relabel(e.message, path, label),
                               _relabel(e.where or label, path, label)) from None
    if path == label:
        return net
    return replace(net, path=label,
                   warnings=tuple(_relabel(w, path, label) for w in net.warnings))
