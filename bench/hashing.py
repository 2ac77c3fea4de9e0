"""Hashing: how fast a local input is hashed, and how fast an unchanged project is re-fingerprinted.

``cold_hash_vs_openssl_sha256_ratio``: a local (``file://`` or relative path) input is hashed by
``inputs.identify_file`` with ``checksums.cached_sha256(src, stat_cache)`` where it lies (a node
that runs gets a copy later, see ``bench.snapshot``), so the hashing cost is exactly
``cached_sha256`` on a stat-cache miss. It is timed here with ``NoStatCache`` (every call
a miss) against ``hashlib.file_digest(f, "sha256")`` on the same 1 GB file of random bytes, in
turns, with the file in the page cache for both. The ratio is product throughput over hashlib's
(hashlib's time over the product's).

``warm_refingerprint_10k_files_s``: a project of 10,000 sparse files of 1 MB each (10 GB apparent,
no real disk use) in 100 folders, made a git work tree as production repositories are, its files
tracked: the one blob of 1 MB of zeros is written once and the index points every file at it, so
setting up reads nothing. The timed work is what ``resolve.resolve`` does for the ``code``
component of a node with ``code-scope: repository``: ``Cache.project_stats`` (a fresh
``BatchStatCache`` over a real sqlite ``ExecutionCache``, as each new task makes), ``list_files``
(``git ls-files``), ``code_component`` and the stat cache's ``flush``. The first run fills the stat
cache (it reads all 10 GB); the figure is the median of the runs after it. The same work with
``.git`` moved aside, so that ``list_files`` walks a plain folder, is printed to stderr for
comparison.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import MB, Options, alternate

FILE_SIZE = 1 << 30
PROJECT_FILES = 10_000
FOLDERS = 100


def _say(message: str) -> None:
    print(f"bench.hashing: {message}", file=sys.stderr, flush=True)


def _random_file(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        for _ in range(size // (16 * MB)):
            handle.write(os.urandom(16 * MB))


def cold_hash_ratio(opts: Options) -> float:
    from airflow_valohai_reuse.fingerprint.checksums import NoStatCache, cached_sha256

    data = opts.workdir / "random-1g.bin"
    _random_file(data, FILE_SIZE)
    expected = hashlib.sha256()
    with open(data, "rb") as handle:  # also pulls the file into the page cache
        while chunk := handle.read(16 * MB):
            expected.update(chunk)

    def product() -> None:
        digest, size = cached_sha256(data, NoStatCache())
        assert digest == expected.hexdigest() and size == FILE_SIZE

    def openssl() -> None:
        with open(data, "rb") as handle:
            assert hashlib.file_digest(handle, "sha256").hexdigest() == expected.hexdigest()

    product_s, hashlib_s = alternate(product, openssl, opts.repeats(7, 3))
    data.unlink()
    _say(
        f"1 GB: product {FILE_SIZE / product_s / MB:.0f} MB/s ({product_s:.3f} s), "
        f"hashlib.file_digest {FILE_SIZE / hashlib_s / MB:.0f} MB/s ({hashlib_s:.3f} s)"
    )
    return hashlib_s / product_s


def _sparse_project(root: Path) -> None:
    for index in range(PROJECT_FILES):
        folder = root / f"pkg{index % FOLDERS:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"module{index:05d}.py", "wb") as handle:
            os.truncate(handle.fileno(), MB)


def _track_all(root: Path) -> None:
    """Make ``root`` a git work tree whose files are all tracked, without reading them."""

    def git(*args: str, stdin: bytes | None = None) -> bytes:
        return subprocess.run(
            ["git", "-C", str(root), *args], input=stdin, capture_output=True, check=True
        ).stdout

    git("init", "-q")
    blob = git("hash-object", "-w", str(next(root.glob("pkg000/*.py")))).decode().strip()
    names = sorted(p.relative_to(root).as_posix() for p in root.glob("pkg*/*.py"))
    git(
        "update-index",
        "--add",
        "--index-info",
        stdin="".join(f"100644 {blob}\t{n}\n" for n in names).encode(),
    )
    listed = git("ls-files", "--cached").decode().split()
    assert len(listed) == PROJECT_FILES, len(listed)


def _fingerprint_code(root: Path, cache: object) -> dict:
    """The ``code`` component as ``resolve.resolve`` computes it for ``code-scope: repository``."""
    from airflow_valohai_reuse.cache.failopen import FailOpenCache
    from airflow_valohai_reuse.cache.statcache import BatchStatCache
    from airflow_valohai_reuse.fingerprint.codesnap import code_component, list_files

    stat_cache = FailOpenCache(cache).project_stats(str(root.resolve()))
    assert isinstance(stat_cache, BatchStatCache)
    code = code_component(root, list_files(root), stat_cache, "repository")
    stat_cache.flush()
    return code


def _warm_median(root: Path, cache: object, repeats: int, expected: dict, label: str) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        code = _fingerprint_code(root, cache)
        times.append(time.perf_counter() - started)
        assert code == expected
    median = statistics.median(times)
    _say(f"{label}: warm re-fingerprint median {median:.3f} s (min {min(times):.3f}, max {max(times):.3f})")
    return median


def warm_refingerprint(opts: Options) -> float:
    from airflow_valohai_reuse.cache.executions import ExecutionCache, _engines

    cache = ExecutionCache(f"sqlite:///{opts.workdir / 'cache.db'}")
    repeats = opts.repeats(15, 5)
    repo = opts.workdir / "project"
    started = time.perf_counter()
    _sparse_project(repo)
    _track_all(repo)
    _say(
        f"git work tree of {PROJECT_FILES} sparse 1 MB files set up in {time.perf_counter() - started:.1f} s"
    )

    started = time.perf_counter()
    code = _fingerprint_code(repo, cache)
    _say(f"first fingerprint (reads 10 GB, fills the stat cache) took {time.perf_counter() - started:.1f} s")
    assert len(code["files"]) == PROJECT_FILES, len(code["files"])
    assert set(code["files"].values()) == {hashlib.sha256(bytes(MB)).hexdigest()}

    figure = _warm_median(repo, cache, repeats, code, "git work tree")
    # The same files at the same paths without .git: list_files walks the folder instead.
    (repo / ".git").rename(opts.workdir / "git-aside")
    _warm_median(repo, cache, repeats, code, "plain folder (os.walk)")
    shutil.rmtree(repo)
    shutil.rmtree(opts.workdir / "git-aside")
    _engines.pop(cache.url).dispose()
    for path in opts.workdir.glob("cache.db*"):
        path.unlink()
    return figure


def run(opts: Options) -> dict[str, float]:
    return {
        "cold_hash_vs_openssl_sha256_ratio": round(cold_hash_ratio(opts), 3),
        "warm_refingerprint_10k_files_s": round(warm_refingerprint(opts), 4),
    }
