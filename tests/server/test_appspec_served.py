"""An app spec naming a factory, served by a real server."""

from tests.support.server import http


def test_server_serves_a_factory_app(server_factory):
    s = server_factory("--fixed-servers", "1", "--threads", "2",
                       app="tests.apps.factory_app:create_app('served', times=2)").start()
    assert http(s.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").endswith(b"servedserved")
