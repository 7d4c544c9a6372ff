"""mpmserver: a pure-Python HTTP/1.1 WSGI server built like Apache httpd's worker MPM."""

__version__ = "0.1.0"
SERVER_SOFTWARE = f"mpmserver/{__version__}"
