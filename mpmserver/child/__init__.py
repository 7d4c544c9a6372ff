"""A child process: its wiring, worker threads, the hand-off queue, admission, connection states and the listener."""
