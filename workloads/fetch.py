"""Download a catalog dataset (``zoosim traces fetch``): resumable, verified, atomic.

The download goes to ``DIR/.NAME.part``; an interrupted one is resumed with an HTTP Range
request from the partial file's size (a server that ignores Range sends the whole file again,
which restarts it cleanly). The finished file is checked against the catalog's sha256 where
one is known (a mismatch deletes it) and renamed into place, so ``DIR/FILE`` is only ever a
complete file. Network failures are :class:`sim.errors.UserError`: one line, exit status 2.
Only the standard library is used (``urllib.request``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sim.errors import UserError
from sim.output import make_dir
from workloads.catalog import Dataset

CHUNK = 1 << 16
ATTEMPTS = 3
"""Tries per fetch: an interrupted transfer is resumed (Range) up to this many times in all."""


def default_dir() -> Path:
    """``$ZOOSIM_DATA`` if set, else ``$XDG_CACHE_HOME/zoosim/traces`` (``~/.cache/...``)."""
    if os.environ.get("ZOOSIM_DATA"):
        return Path(os.environ["ZOOSIM_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "zoosim" / "traces"


@dataclass
class Fetched:
    """What a fetch did: where the file is, its digest, whether it was checked, whether it was
    downloaded now (False: already present)."""

    path: Path
    sha256: str
    verified: bool
    downloaded: bool


class _Interrupted(Exception):
    """The transfer stopped before the end (the partial file is kept for a resume)."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(ds: Dataset, out_dir: Path, url: str | None = None,
          progress: Callable[[int, int | None], Any] | None = None,
          timeout: float = 30.0) -> Fetched:
    """Download ``ds`` into ``out_dir`` (from ``url`` instead of the catalog's, if given);
    ``progress(done, total)`` is called as bytes arrive."""
    url = url or ds.url
    dest = out_dir / ds.file
    if dest.exists():
        digest = sha256_of(dest)
        if ds.sha256 is not None and digest != ds.sha256:
            raise UserError(f"{dest} exists but its sha256 is {digest}, not the expected "
                            f"{ds.sha256}; delete it to fetch {ds.name} again")
        return Fetched(dest, digest, ds.sha256 is not None, downloaded=False)
    created = not out_dir.exists()
    make_dir(out_dir)
    part = out_dir / f".{ds.name}.part"
    try:
        for attempt in range(ATTEMPTS):
            try:
                _download(url, part, progress, timeout)
                break
            except _Interrupted as e:
                if attempt == ATTEMPTS - 1:
                    kept = part.stat().st_size if part.exists() else 0
                    raise UserError(f"the download of {ds.name} from {_host(url)} was "
                                    f"interrupted {ATTEMPTS} times ({e}); run the same command "
                                    f"again to resume from {kept} bytes") from None
    except UserError:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()   # leave no empty folder behind a failed first fetch
        raise
    digest = sha256_of(part)
    if ds.sha256 is not None and digest != ds.sha256:
        part.unlink()
        raise UserError(f"{ds.name}: the download from {url} has sha256 {digest}, not the "
                        f"expected {ds.sha256}; it was deleted")
    os.replace(part, dest)
    return Fetched(dest, digest, ds.sha256 is not None, downloaded=True)


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _unreachable(url: str, why: object) -> UserError:
    return UserError(f"cannot reach {_host(url)}: {why}; the shipped samples work offline "
                     "(zoosim traces list)")


def _download(url: str, part: Path, progress: Callable[[int, int | None], Any] | None,
              timeout: float) -> None:
    """One request: resume ``part`` from its size (or start it); raise _Interrupted if the
    transfer stops early, UserError if the server cannot be reached or refuses."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "zoosim"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have and _complete_size(e.headers.get("Content-Range")) == have:
            return   # the partial file is the whole file: a run stopped before its rename
        if e.code == 416:   # a partial file longer than the file: start again
            part.unlink()
            raise _Interrupted("the partial file did not match the server's; restarted") from None
        raise _unreachable(url, f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _unreachable(url, e.reason) from None
    except (OSError, http.client.HTTPException) as e:
        raise _unreachable(url, e) from None
    with resp:
        start = 0
        if resp.status == 206:
            start = _range_start(resp.headers.get("Content-Range"))
            if start != have:   # not the range asked for: start again
                part.unlink()
                raise _Interrupted(f"the server resumed at byte {start}, not {have}")
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        done = start
        mode = "ab" if start else "wb"   # 200: the server ignored Range; rewrite from 0
        with part.open(mode) as f:
            try:
                done = _copy(resp, f, done, total, progress)
            except (OSError, http.client.HTTPException) as e:
                raise _Interrupted(f"{type(e).__name__} after {f.tell()} bytes") from None
        if total is not None and done < total:
            raise _Interrupted(f"{done} of {total} bytes")


def _copy(resp: IO[bytes], f: IO[bytes], done: int, total: int | None,
          progress: Callable[[int, int | None], Any] | None) -> int:
    while block := resp.read(CHUNK):
        f.write(block)
        done += len(block)
        if progress is not None:
            progress(done, total)
    return done


def _range_start(content_range: str | None) -> int:
    m = re.match(r"bytes (\d+)-", content_range or "")
    return int(m.group(1)) if m else -1


def _complete_size(content_range: str | None) -> int | None:
    m = re.match(r"bytes \*/(\d+)", content_range or "")
    return int(m.group(1)) if m else None
