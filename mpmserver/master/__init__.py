"""The master process. Mechanism: master.py (the loop and the life cycle),
children.py (fork, reap, stop), signals.py, control.py (what a signal
means, the drain, the end of a binary upgrade), startup.py, reconfigure.py,
lost_requests.py. Pure policy, snapshot in and actions.py's actions out:
maintenance.py (idle servers, child exits), retirement.py (a graceful
restart's old generation), request_timeout.py, stopping.py."""
