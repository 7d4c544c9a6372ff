"""A browser loads Django's admin with its CSS from an Alias (issue 27):
headless Chromium renders /admin/login/ from a real mpmserver serving
STATIC_ROOT with --static; the access log shows Chromium's requests for the
hashed CSS answered 200, and the screenshot shows the admin's styled header
(without its CSS the page is unstyled black on white)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support.djangostatic import WSGI_APP, collected_static_root
from tests.support.server import Server, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [pytest.mark.external, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]
pytest.importorskip("django")
Image = pytest.importorskip("PIL.Image")

# The admin's --header-bg (Django 4-5): the login box's title bar.
HEADER_BG = (65, 118, 144)


def test_chromium_renders_the_admin_login_with_its_css(request, tmp_path):
    static_root = collected_static_root(request)
    log = tmp_path / "access.log"
    s = Server("--static", f"/static/={static_root}", "--custom-log", str(log), "combined",
               app=WSGI_APP, tmp_path=tmp_path, access_log=True,
               env={"MPMSERVER_TEST_STATIC_ROOT": str(static_root)}).start()
    shot = tmp_path / "login.png"
    try:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1024,768",
                        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                        f"{s.url}/admin/login/"], capture_output=True, timeout=120, check=True)
        css = wait_for(lambda: [line for line in log.read_text().splitlines()
                                if re.search(r'"GET /static/admin/css/\S+\.[0-9a-f]{12}\.css HTTP/1.1" 200 ', line)
                                and "HeadlessChrome" in line], 10, what="Chromium's CSS requests in the access log")
        assert any("/static/admin/css/base." in line for line in css) and len(css) >= 2
    finally:
        s.stop()
    image = Image.open(shot).convert("RGB")
    title_bar = image.getpixel((image.width // 2, 110))
    assert all(abs(a - b) <= 8 for a, b in zip(title_bar, HEADER_BG)), title_bar
