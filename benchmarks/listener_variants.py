"""The app benchmarks/idle_connections.py serves: plaintext, under the
event MPM's keep-alive (a worker gives a connection with no request
buffered back to the listener at once, which parks it).

Until issue 22 this module also swapped in other keep-alive strategies
through a hook that existed only for it (Worker.keep_alive_strategy) and
was measured once (README, "Idle connections": keep = the worker waits for
the next request like the worker MPM; poll / pollall = a 1 ms wait in the
worker before parking; hold = up to 50 ms while no request waits). Those
variants are dropped with the hook: the production worker has no
keep-alive strategy to choose. To measure one again, add it to
Worker.serve at the point where it gives a KEEP back (commit 4678d80 has
the hook and the variants) rather than reviving a hook for benchmarks.
MPM_KEEPALIVE_VARIANT other than "park" is refused, so that
`idle_connections.py --only variants` cannot report the event MPM's figure
under another variant's name.
"""

from __future__ import annotations

import os

from .apps import plaintext as app  # noqa: F401  (the app served)

VARIANT = os.environ.get("MPM_KEEPALIVE_VARIANT", "park")
if VARIANT != "park":
    raise RuntimeError(f"MPM_KEEPALIVE_VARIANT={VARIANT!r}: only 'park' remains (see benchmarks/listener_variants.py)")
