"""``zoosim traces list|fetch`` against a local HTTP server (no download from the Internet):
a verified fetch, a resumed one (HTTP Range), a wrong digest, an unreachable host."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import main
from workloads import catalog
from workloads.catalog import Dataset

BODY = bytes(range(256)) * 400   # 102,400 bytes


@dataclass
class Served:
    """What the server sends and what it saw."""

    body: bytes = BODY
    cut_after: int | None = None
    """Close the connection after this many body bytes, once (every time: ``cut_always``)."""
    cut_always: bool = False
    honour_range: bool = True
    missing: bool = False
    """Answer 404."""
    ranges: list[str | None] = field(default_factory=list)
    """The Range header of each request (None: none)."""
    url: str = ""


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            served.ranges.append(rng)
            if served.missing:
                self.send_error(404)
                return
            body, start = served.body, 0
            if rng and served.honour_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            part = body[start:]
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if served.cut_after is not None:
                self.wfile.write(part[:served.cut_after])
                self.wfile.flush()
                if not served.cut_always:
                    served.cut_after = None
                self.close_connection = True
                return
            self.wfile.write(part)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[Served]:
    served = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{httpd.server_address[1]}/trace.csv"
    yield served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def entry(monkeypatch: pytest.MonkeyPatch) -> Dataset:
    """A catalog entry for the served file, with its digest."""
    ds = Dataset("tiny", "tiny.csv", "a test file", "http://invalid.example/tiny.csv",
                 "nobody", sha256=hashlib.sha256(BODY).hexdigest(), size=len(BODY))
    monkeypatch.setitem(catalog.DATASETS, ds.name, ds)
    return ds


def fetch(out: Path, url: str, name: str = "tiny") -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["traces", "fetch", name, "-o", str(out), "--url", url])
    return res.exit_code, res.stdout, res.stderr


def test_fetch_downloads_and_verifies(tmp_path: Path, server: Served, entry: Dataset) -> None:
    code, out, err = fetch(tmp_path, server.url)
    assert code == 0, err
    path = tmp_path / entry.file
    assert out.strip() == str(path) and "sha256 verified" in err
    assert path.read_bytes() == BODY
    assert [p.name for p in tmp_path.iterdir()] == [entry.file]   # no .part left
    code, out, err = fetch(tmp_path, server.url)   # present and verified: no download
    assert code == 0 and "already verified" in err and len(server.ranges) == 1


def test_an_interrupted_fetch_resumes_with_a_range_request(tmp_path: Path, server: Served,
                                                           entry: Dataset) -> None:
    server.cut_after = len(BODY) // 2
    code, _, err = fetch(tmp_path, server.url)
    assert code == 0, err
    assert server.ranges == [None, f"bytes={len(BODY) // 2}-"]
    assert (tmp_path / entry.file).read_bytes() == BODY


def test_a_fetch_cut_every_time_keeps_its_part_for_the_next_run(
        tmp_path: Path, server: Served, entry: Dataset) -> None:
    server.cut_after, server.cut_always = 10_000, True
    code, out, err = fetch(tmp_path, server.url)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "run the same command again" in err
    assert (tmp_path / ".tiny.part").read_bytes() == BODY[:30_000]   # three tries
    server.cut_always = False
    server.cut_after = None
    code, _, err = fetch(tmp_path, server.url)
    assert code == 0, err
    assert server.ranges[-1] == "bytes=30000-"
    assert (tmp_path / entry.file).read_bytes() == BODY


def test_a_partial_file_from_an_earlier_run_is_resumed(tmp_path: Path, server: Served,
                                                      entry: Dataset) -> None:
    (tmp_path / ".tiny.part").write_bytes(BODY[:1000])
    code, _, err = fetch(tmp_path, server.url)
    assert code == 0, err
    assert server.ranges == ["bytes=1000-"]
    assert (tmp_path / entry.file).read_bytes() == BODY


def test_a_server_that_ignores_range_restarts_cleanly(tmp_path: Path, server: Served,
                                                      entry: Dataset) -> None:
    server.honour_range = False
    (tmp_path / ".tiny.part").write_bytes(b"stale bytes of another download")
    code, _, err = fetch(tmp_path, server.url)
    assert code == 0, err
    assert (tmp_path / entry.file).read_bytes() == BODY


def test_a_wrong_digest_exits_2_and_leaves_no_file(tmp_path: Path, server: Served,
                                                   entry: Dataset) -> None:
    server.body = BODY[:-1] + b"!"
    code, out, err = fetch(tmp_path, server.url)
    assert code == 2 and out == ""
    assert "sha256" in err and entry.sha256 in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_digest_is_reported_unverified(tmp_path: Path, server: Served,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(catalog.DATASETS, "loose",
                        Dataset("loose", "loose.csv", "no digest", server.url, "nobody"))
    code, out, err = fetch(tmp_path, server.url, "loose")
    assert code == 0, err
    assert "unverified" in err and hashlib.sha256(BODY).hexdigest() in err
    assert Path(out.strip()).read_bytes() == BODY


def test_an_unreachable_host_exits_2_with_one_line(tmp_path: Path, entry: Dataset) -> None:
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = fetch(tmp_path, f"http://127.0.0.1:{port}/tiny.csv")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert f"cannot reach 127.0.0.1:{port}" in lines[0] and "zoosim traces list" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_an_http_error_exits_2_with_one_line(tmp_path: Path, entry: Dataset,
                                             server: Served) -> None:
    server.missing = True
    code, _, err = fetch(tmp_path, server.url)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot reach 127.0.0.1" in err and "HTTP 404" in err
    assert list(tmp_path.iterdir()) == []


def test_a_partial_file_longer_than_the_file_restarts(tmp_path: Path, entry: Dataset,
                                                      server: Served) -> None:
    (tmp_path / ".tiny.part").write_bytes(BODY + b"junk")   # the server answers 416
    code, _, err = fetch(tmp_path, server.url)
    assert code == 0, err
    assert server.ranges == [f"bytes={len(BODY) + 4}-", None]
    assert (tmp_path / entry.file).read_bytes() == BODY


def test_an_unknown_name_exits_2_listing_the_names(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["traces", "fetch", "azure-2099", "-o", str(tmp_path)])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert all(name in res.stderr for name in catalog.DATASETS)


def test_list_shows_the_shipped_files_and_the_attribution() -> None:
    res = CliRunner().invoke(main, ["traces", "list"])
    assert res.exit_code == 0
    for sample in catalog.SAMPLES:
        assert sample.file in res.output
    for ds in catalog.DATASETS.values():
        assert ds.name in res.output and ds.url in res.output
    assert "CC-BY-4.0" in res.output


def test_the_pinned_digests_are_the_shipped_copies() -> None:
    """The LLM 2023 traces are shipped whole: their catalog digests are the shipped files'."""
    shipped = {"azure-llm-2023-conv": "azure_llm_inference_2023_conv.csv",
               "azure-llm-2023-code": "azure_llm_inference_2023_code.csv"}
    for name, file in shipped.items():
        data = (catalog.SHIPPED_TRACES / file).read_bytes()
        ds = catalog.DATASETS[name]
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (ds.sha256, ds.size)
