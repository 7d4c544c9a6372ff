"""The test server catches what frameworks swallow (issue 14): Flask and Django
turn a view's exception into a 500 and log it; serve() re-raises it."""

import logging
import threading

import pytest

from mpmserver.testing import serve
from tests.support.client import get_url

pytest.importorskip("flask")


def flask_app():
    from tests.apps.flask_app import app
    return app


@pytest.mark.parametrize("processes", [0, 1])
def test_flask_500_fails_the_test(processes):
    with pytest.raises(KeyError, match="flask view failed on purpose"):
        with serve(flask_app(), processes=processes) as server:
            status, _ = get_url(server.url + "/boom")
            assert status == 500
            assert get_url(server.url + "/")[0] == 200


@pytest.mark.parametrize("processes", [0, 1])
def test_django_500_fails_the_test(processes):
    pytest.importorskip("django")
    with pytest.raises(ZeroDivisionError, match="django view failed on purpose"):
        with serve("tests.apps.djangoproject.wsgi:application", processes=processes) as server:
            status, body = get_url(server.url + "/boom")
            assert status == 500 and b"Server Error" in body
            assert get_url(server.url + "/hello") == (200, b"Hello from Django")
            # Recorded before the 500 was sent: visible as soon as the response is.
            assert [type(e) for e in server.errors] == [ZeroDivisionError]


def test_the_opt_out_and_acknowledging(caplog):
    with serve(flask_app(), raise_logged_errors=False) as server:
        assert get_url(server.url + "/boom")[0] == 500
        assert server.errors == []
    with serve(flask_app()) as server:
        assert get_url(server.url + "/boom")[0] == 500
        assert [type(e) for e in server.errors] == [KeyError]
        server.errors.clear()  # expected


def test_records_from_other_threads_or_without_exc_info_are_not_errors():
    def app(environ, start_response):
        logging.getLogger("app").error("an error without a traceback")
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with serve(app) as server:
        assert get_url(server.url + "/")[0] == 200
        # The test's own thread logging an exception is not the server's business.
        try:
            raise ValueError("in the test thread")
        except ValueError:
            logging.getLogger("test").exception("handled by the test")
        t = threading.Thread(target=lambda: logging.getLogger("x").error("x", exc_info=ValueError("other")))
        t.start()
        t.join()
        assert server.errors == []


def test_logged_and_then_raised_is_reported_once():
    def app(environ, start_response):
        try:
            raise RuntimeError("logged, then raised")
        except RuntimeError:
            logging.getLogger("app").exception("about to re-raise")
            raise

    with pytest.raises(RuntimeError, match="logged, then raised"):  # one error, not a group
        with serve(app) as server:
            assert get_url(server.url + "/")[0] == 500
