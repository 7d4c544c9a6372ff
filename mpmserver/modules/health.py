"""HealthPath: the answer a load balancer's health check gets (pure).

200 "ok" while the child serves; 503 once the master has said the server is
going away (draining under GracefulStopDrain, or stopping) or the child
itself is stopping (recycling, a graceful restart). It never reaches the app,
so a slow or broken app does not change the answer: the check says whether
this server takes traffic, not whether the app is healthy. Every method gets
the same answer (HAProxy's ``option httpchk`` sends OPTIONS by default).
"""

from __future__ import annotations

from typing import Callable

from .pages import Answer, serve_page

__all__ = ["health_answer", "health_app"]


def health_answer(going_away: str | None) -> tuple[str, bytes]:
    """(status line, body) for the reason the server is going away, or None."""
    if going_away is None:
        return "200 OK", b"ok\n"
    return "503 Service Unavailable", f"{going_away}\n".encode()


def health_app(app: Callable, path: str, going_away: Callable[[], str | None]) -> Callable:
    """Wrap ``app`` so that ``path`` is answered from ``going_away()`` alone,
    whatever the method and the client (pages.serve_page)."""

    def answer(environ: dict) -> Answer:
        return Answer(*health_answer(going_away()))

    return serve_page(app, path, answer, what="The health check", any_method=True)
