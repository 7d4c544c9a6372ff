"""Fixtures of the real-server tests."""

from tests.support.listener import start  # noqa: F401 (the listener tests' server, both event loops)
