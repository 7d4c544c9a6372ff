"""pytest plugin (registered through the pytest11 entry point): the
`mpm_server` fixture, and `mpm_server_tls` for HTTPS.

    def test_hello(mpm_server):
        url = mpm_server(app, threads_per_child=2).url
        assert requests.get(url + "/hello").status_code == 200

An exception the app raised during the test fails that test (raised at the
end of its call phase, chained to the test's own failure if any); servers are
stopped at teardown.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from .testing import LiveServer, serve

_SERVERS = pytest.StashKey[list]()


@pytest.fixture
def mpm_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``mpm_server(app, processes=0, raise_app_errors=True, **directives)``
    starts a server (see mpmserver.testing.serve) and returns it."""
    servers: list[LiveServer] = []
    request.node.stash[_SERVERS] = servers

    def start(app: Any, **kwargs: Any) -> LiveServer:
        server = serve(app, **kwargs)
        servers.append(server)
        return server

    yield start
    try:
        _stop_all(servers)
    finally:
        # Errors raised after the call phase (in teardown of other fixtures).
        _raise_all(servers)


@pytest.fixture
def mpm_server_tls(mpm_server: Callable[..., LiveServer]) -> Callable[..., LiveServer]:
    """Factory like ``mpm_server``, serving HTTPS with a throwaway CA
    (``serve(app, tls=True)``): verify with ``server.ca_file`` or
    ``server.client_context()``."""

    def start(app: Any, **kwargs: Any) -> LiveServer:
        kwargs.setdefault("tls", True)
        return mpm_server(app, **kwargs)

    return start


def _stop_all(servers: list[LiveServer]) -> None:
    first: BaseException | None = None
    for server in servers:
        try:
            server.stop()
        except BaseException as exc:  # noqa: BLE001 - stop the others before reporting
            first = first or exc
    if first is not None:
        raise first


def _raise_all(servers: list[LiveServer]) -> None:
    __tracebackhide__ = True
    found: list[Exception] = []
    for server in servers:
        try:
            server.raise_errors()
        except Exception as exc:  # noqa: BLE001 - collected, raised below
            found.append(exc)
    if len(found) == 1:
        raise found[0]
    if found:
        raise ExceptionGroup(f"the app raised in {len(found)} servers", found)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # The app's errors belong to the test that caused them: raise them in the
    # call phase, so the test fails rather than passing with a teardown error.
    __tracebackhide__ = True
    try:
        return (yield)
    finally:
        servers = item.stash.get(_SERVERS, None)
        if servers:
            _raise_all(servers)
