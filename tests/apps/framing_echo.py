"""The echo app of the differential framing corpus (tests/external/
test_framing_corpus.py): every server of the comparison serves it, so each
answer says what the app saw. One file, standard library only: Debian's
mod_wsgi imports a copy of it under the system python3.

The answer is a JSON object: method, PATH_INFO, QUERY_STRING, the length and
a SHA-256 prefix of the body the app read. With FRAMING_ECHO_LOG set (mpmserver
behind the proxies), each request is also appended to that file as one JSON
line before it is answered, so a request the back end served that no
client's answer accounts for (a desync) is seen."""

import hashlib
import json
import os


def _body(environ) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        return stream.read(int(length))
    if environ.get("wsgi.input_terminated") or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        chunks = []
        while True:
            block = stream.read(65536)
            if not block:
                return b"".join(chunks)
            chunks.append(block)
    return b""


def app(environ, start_response):
    body = _body(environ)
    seen = {"m": environ["REQUEST_METHOD"], "p": environ.get("PATH_INFO", ""),
            "q": environ.get("QUERY_STRING", ""), "n": len(body), "h": hashlib.sha256(body).hexdigest()[:12]}
    out = json.dumps(seen, sort_keys=True).encode()
    log = os.environ.get("FRAMING_ECHO_LOG")
    if log:
        with open(log, "ab") as f:
            f.write(out + b"\n")  # one write of one line: O_APPEND keeps lines whole
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


application = app
