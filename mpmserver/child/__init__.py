"""A child process. child.py wires it (Child) and runs it as a process
(child_main); worker.py (the worker threads), handoff.py (the queue between
the listener and the workers), connection.py (a connection's states, its
table, the socket's blocking mode), admission.py (pure: whether to accept,
when to transfer and to whom), transfer.py (the sibling-transfer mechanism:
descriptors over a unix datagram socket); listener/ the event loop thread."""
