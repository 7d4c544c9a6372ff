"""HTTP/1.1 and WSGI: head checks, the request cycle, the response writer, the WSGI adapter, errors, framing."""
