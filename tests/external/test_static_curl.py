"""A 100 MB file from an Alias, by curl (issue 27): a real master and
child, curl's own HTTP. The whole file (checked by SHA-256), a range of it,
a 304 to curl's --etag-compare, and a HEAD."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from mpmserver.testing import serve

pytestmark = [pytest.mark.external,
              pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")]

SIZE = 100 * 1000 * 1000
PIECE = 1 << 20


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 100 MB file of varied bytes, and its SHA-256."""
    root = tmp_path_factory.mktemp("static")
    digest = hashlib.sha256()
    block = hashlib.sha512(b"mpmserver").digest() * (PIECE // 64)
    with open(root / "big.bin", "wb") as f:
        for i in range(SIZE // PIECE + 1):
            piece = block[: min(PIECE, SIZE - i * PIECE)]
            piece = bytes([i % 251]) + piece[1:] if piece else piece
            f.write(piece)
            digest.update(piece)
    return root, digest.hexdigest()


def curl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "--silent", "--show-error", *args], capture_output=True, timeout=timeout)


def test_curl_downloads_a_100mb_file_whole_in_part_and_conditionally(big, tmp_path):
    root, sha = big
    with serve(app, static={"/static/": root}, processes=1) as s:
        url = f"{s.url}/static/big.bin"
        out = tmp_path / "got.bin"
        r = curl("--fail", "-o", str(out), "-w", "%{http_code} %{size_download}", url)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode() == f"200 {SIZE}"
        h = hashlib.sha256()
        with open(out, "rb") as f:
            while piece := f.read(PIECE):
                h.update(piece)
        assert h.hexdigest() == sha

        r = curl("--fail", "-r", "50000000-50000999", "-w", "\n%{http_code}", url)
        body, _, code = r.stdout.rpartition(b"\n")
        with open(root / "big.bin", "rb") as f:
            f.seek(50_000_000)
            assert (code, body) == (b"206", f.read(1000))

        etags = tmp_path / "etag"
        assert curl("--fail", "-I", "--etag-save", str(etags), url).returncode == 0
        r = curl("--etag-compare", str(etags), "-o", "/dev/null", "-w", "%{http_code}", url)
        assert r.stdout == b"304"

        r = curl("-I", url)
        assert r.stdout.startswith(b"HTTP/1.1 200") and f"Content-Length: {SIZE}".encode() in r.stdout
