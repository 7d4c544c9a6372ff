"""The listener: a child's event loop thread, in rooms around a loop core.
core.py (the loop, the table, timers and watches, publishing), accept.py,
reading.py (PROXY/RemoteIP, heads, small bodies, stage timers, the
dispatch), parking.py (keep-alive), siblings.py (sibling transfer),
completion.py (write completion, error responses, lingering close);
listener.py assembles them and routes what workers give back."""
