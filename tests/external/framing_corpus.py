"""The differential HTTP/1.1 framing corpus (issue 25 item 5): a few hundred
raw requests, generated class by class, that tests/external/
test_framing_corpus.py sends to mpmserver, gunicorn, waitress and Apache +
mod_wsgi directly, and through nginx, HAProxy and Apache mod_proxy in front
of mpmserver.

Each case is one connection: the request under test, then a pipelined probe
(``GET /probe`` with Connection: close), so that a server which frames the
first request differently from its peers answers the probe differently (or
serves a request hidden in a body: those are ``/smuggled``). ``@@`` in a
case's bytes becomes ``c=<index>``, so that each request the app sees names
its case.

EXCEPTIONS: the cases where mpmserver accepts what the strictest peer
refuses, each with the reason it is right to. The test prints every
disagreement; it fails where mpmserver accepts what a peer refuses and the
case is not listed here, or where its app sees a request no peer's app saw.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str    # unique: class/variant
    raw: bytes

    @property
    def cls(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def requests(self) -> int:
        """The most requests any reading of these bytes can find: one per
        request line naming an HTTP version, and the first request whatever
        its version (HTTP/0.9 names none, a junk one is no "HTTP/")."""
        first_line = self.raw.split(b"\n", 1)[0]
        return self.raw.upper().count(b" HTTP/") + (b" HTTP/" not in first_line.upper())


H = b"Host: a\r\n"
PROBE = b"GET /probe?@@ HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"
SMUGGLED = b"GET /smuggled?@@ HTTP/1.1\r\nHost: s\r\n\r\n"
TE = b"Transfer-Encoding: chunked\r\n"


def post(fields: bytes, body: bytes, target: bytes = b"/t?@@") -> bytes:
    return b"POST " + target + b" HTTP/1.1\r\n" + H + fields + b"\r\n" + body


def chunked(body: bytes, fields: bytes = b"") -> bytes:
    return post(TE + fields, body)


def _chunk_sizes():
    sizes = {
        "plain": b"5", "zero-lead": b"05", "zeros-lead": b"0000000005", "many-zeros": b"0" * 40 + b"5",
        "hex-lower": b"a", "hex-upper": b"A", "0x": b"0x5", "plus": b"+5", "minus": b"-5",
        "space-after": b"5 ", "tab-after": b"5\t", "space-before": b" 5", "empty": b"",
        "overflow-64": b"10000000000000005", "overflow-huge": b"f" * 20, "not-hex": b"5g",
        "underscore": b"5_", "unicode-digit": "\u0665".encode(), "two-sizes": b"5 5",
    }
    for name, size in sizes.items():
        data = b"helloworld" if size.strip().lower() in (b"a",) else b"hello"
        yield f"chunk-size/{name}", chunked(size + b"\r\n" + data + b"\r\n0\r\n\r\n")
    bodies = {
        "data-longer": b"5\r\nhelloXX\r\n0\r\n\r\n", "data-shorter": b"5\r\nhel\r\n0\r\n\r\n",
        "no-crlf-after-data": b"5\r\nhello0\r\n\r\n", "lf-only": b"5\nhello\n0\n\n",
        "lf-after-size": b"5\nhello\r\n0\r\n\r\n", "lf-after-data": b"5\r\nhello\n0\r\n\r\n",
        "cr-after-size": b"5\rhello\r\n0\r\n\r\n", "last-chunk-00": b"5\r\nhello\r\n00\r\n\r\n",
        "last-chunk-missing": b"5\r\nhello\r\n\r\n", "no-last-crlf": b"5\r\nhello\r\n0\r\n",
        "zero-then-data": b"0\r\n\r\nhello", "many-chunks": b"1\r\nh\r\n1\r\ne\r\n3\r\nllo\r\n0\r\n\r\n",
        "big-chunk": b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n",
    }
    for name, body in bodies.items():
        yield f"chunk-size/{name}", chunked(body)


def _chunk_extensions():
    exts = {
        "token": b";a", "token-value": b";a=b", "quoted": b';a="b c"', "quoted-escape": b';a="x\\"y"',
        "two": b";a=b;c=d", "bws": b" ; a = b", "tab-bws": b"\t;a", "empty-quoted": b';a=""',
        "bare-cr": b";a\rb", "nul": b";a\x00", "del": b";a\x7f", "cr-in-quoted": b';a="\r"',
        "lf-in-quoted": b';a="\n"', "no-name": b";", "no-name-value": b";=b", "empty-value": b";a=",
        "unterminated-quote": b';a="b', "space-in-name": b";a b", "ctl": b";a\x01", "obs-text-value": b";a=\x80",
        "tab-in-name": b";a\tb", "semicolon-only-value": b";a=;", "slash-in-token": b";a/b",
        "long": b";a=" + b"x" * 5000, "quote-in-token": b';a"b',
    }
    for name, ext in exts.items():
        yield f"chunk-ext/{name}", chunked(b"5" + ext + b"\r\nhello\r\n0\r\n\r\n")
    for name in ("token", "nul", "bare-cr", "del"):
        yield f"chunk-ext/last-{name}", chunked(b"5\r\nhello\r\n0" + exts[name] + b"\r\n\r\n")


def _trailers():
    trailers = {
        "one": b"X: y\r\n", "two": b"X: y\r\nZ: w\r\n", "empty-value": b"X:\r\n", "tab-value": b"X:\ty\r\n",
        "bare-lf-end": None, "bare-lf-field": b"X: y\n", "obs-fold": b"X: y\r\n z\r\n",
        "bare-cr": b"X: a\rb\r\n", "nul": b"X: a\x00\r\n", "ctl": b"X: a\x01\r\n", "no-colon": b"X y\r\n",
        "space-before-colon": b"X : y\r\n", "content-length": b"Content-Length: 5\r\n",
        "transfer-encoding": b"Transfer-Encoding: chunked\r\n", "host": b"Host: b\r\n",
        "bad-name": b"X(: y\r\n", "leading-space": b" X: y\r\n", "long": b"X: " + b"y" * 6000 + b"\r\n",
    }
    for name, t in trailers.items():
        end = b"0\r\n\n" if t is None else b"0\r\n" + t + b"\r\n"
        yield f"trailer/{name}", chunked(b"5\r\nhello\r\n" + end)


def _bare_cr_lf():
    lines = {
        "lf-everywhere": b"GET /x?@@ HTTP/1.1\nHost: a\n\n",
        "lf-after-request-line": b"GET /x?@@ HTTP/1.1\nHost: a\r\n\r\n",
        "lf-after-field": b"GET /x?@@ HTTP/1.1\r\nHost: a\n\r\n",
        "lf-end-of-head": b"GET /x?@@ HTTP/1.1\r\nHost: a\r\n\n",
        "cr-everywhere": b"GET /x?@@ HTTP/1.1\rHost: a\r\r",
        "cr-in-value": b"GET /x?@@ HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        "cr-in-request-line": b"GET /x?@@\r HTTP/1.1\r\nHost: a\r\n\r\n",
        "cr-end-of-field": b"GET /x?@@ HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        "lf-in-value-cl": b"POST /x?@@ HTTP/1.1\r\nHost: a\r\nX: a\nContent-Length: 5\r\n\r\nhello",
        "cr-before-cl": b"POST /x?@@ HTTP/1.1\r\nHost: a\r\nX: a\rContent-Length: 5\r\n\r\nhello",
        "leading-crlf": b"\r\nGET /x?@@ HTTP/1.1\r\nHost: a\r\n\r\n",
        "leading-crlfs": b"\r\n\r\n\r\nGET /x?@@ HTTP/1.1\r\nHost: a\r\n\r\n",
        "leading-lf": b"\nGET /x?@@ HTTP/1.1\r\nHost: a\r\n\r\n",
        "nul-in-value": b"GET /x?@@ HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
        "del-in-value": b"GET /x?@@ HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
        "obs-text-value": b"GET /x?@@ HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n",
        "ctl-in-value": b"GET /x?@@ HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n",
    }
    for name, raw in lines.items():
        yield f"bare-cr-lf/{name}", raw


def _obs_fold():
    folds = {
        "value": b"X: a\r\n b\r\n", "tab": b"X: a\r\n\tb\r\n",
        "content-length": b"Content-Length:\r\n 5\r\n", "transfer-encoding": b"Transfer-Encoding:\r\n chunked\r\n",
        "te-continued": b"Transfer-Encoding: gzip\r\n ,chunked\r\n", "first-line": b" X: a\r\n",
        "host": b"Host:\r\n a\r\n",
    }
    for name, fields in folds.items():
        body = b"5\r\nhello\r\n0\r\n\r\n" if b"Transfer" in fields else b"hello" if b"Length" in fields else b""
        yield f"obs-fold/{name}", b"POST /x?@@ HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n" + body
    yield "obs-fold/before-host", b"GET /x?@@ HTTP/1.1\r\n a\r\nHost: a\r\n\r\n"


def _te_cl():
    body = b"5\r\nhello\r\n0\r\n\r\n"
    smuggle = b"0\r\n\r\n" + SMUGGLED
    cl = {
        "two-same": (b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
        "two-differ": (b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
        "comma-same": (b"Content-Length: 5, 5\r\n", b"hello"), "comma-differ": (b"Content-Length: 5, 6\r\n", b"hello!"),
        "plus": (b"Content-Length: +5\r\n", b"hello"), "minus": (b"Content-Length: -5\r\n", b"hello"),
        "space-around": (b"Content-Length:  5  \r\n", b"hello"), "tab-around": (b"Content-Length:\t5\t\r\n", b"hello"),
        "two-numbers": (b"Content-Length: 5 5\r\n", b"hello"), "hex": (b"Content-Length: 0x5\r\n", b"hello"),
        "leading-zeros": (b"Content-Length: 005\r\n", b"hello"), "empty": (b"Content-Length:\r\n", b""),
        "huge": (b"Content-Length: 99999999999999999999999\r\n", b"hello"), "decimal": (b"Content-Length: 5.0\r\n", b"hello"),
        "unicode-digit": ("Content-Length: \u0665\r\n".encode(), b"hello"), "underscore": (b"Content-Length: 5_\r\n", b"hello"),
        "space-before-colon": (b"Content-Length : 5\r\n", b"hello"), "name-underscore": (b"Content_Length: 5\r\n", b"hello"),
        "zero-with-body": (b"Content-Length: 0\r\n", b""), "short-body": (b"Content-Length: 3\r\n", b"hello"),
        "smuggle-in-body": (b"Content-Length: %d\r\n" % len(SMUGGLED), SMUGGLED),
    }
    for name, (fields, data) in cl.items():
        yield f"content-length/{name}", post(fields, data)
    te = {
        "chunked": TE, "case-upper": b"Transfer-Encoding: CHUNKED\r\n", "case-mixed": b"Transfer-Encoding: Chunked\r\n",
        "name-upper": b"TRANSFER-ENCODING: chunked\r\n", "gzip-chunked": b"Transfer-Encoding: gzip, chunked\r\n",
        "chunked-gzip": b"Transfer-Encoding: chunked, gzip\r\n", "identity": b"Transfer-Encoding: identity\r\n",
        "identity-chunked": b"Transfer-Encoding: identity, chunked\r\n",
        "chunked-twice": b"Transfer-Encoding: chunked, chunked\r\n", "two-fields": b"Transfer-Encoding: chunked\r\n" * 2,
        "two-fields-gzip": b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "trailing-space": b"Transfer-Encoding: chunked \r\n", "leading-tab": b"Transfer-Encoding:\tchunked\r\n",
        "xchunked": b"Transfer-Encoding: xchunked\r\n", "chunked-x": b"Transfer-Encoding: chunkedx\r\n",
        "quoted": b'Transfer-Encoding: "chunked"\r\n', "param": b"Transfer-Encoding: chunked;q=1\r\n",
        "empty": b"Transfer-Encoding:\r\n", "comma-empty": b"Transfer-Encoding: ,chunked\r\n",
        "space-before-colon": b"Transfer-Encoding : chunked\r\n", "name-underscore": b"Transfer_Encoding: chunked\r\n",
        "nul-value": b"Transfer-Encoding: chunked\x00\r\n", "vtab": b"Transfer-Encoding:\x0bchunked\r\n",
        "gzip": b"Transfer-Encoding: gzip\r\n",
    }
    for name, fields in te.items():
        yield f"transfer-encoding/{name}", post(fields, body)
    both = {
        "te-then-cl": TE + b"Content-Length: 3\r\n", "cl-then-te": b"Content-Length: 3\r\n" + TE,
        "te-cl-zero": TE + b"Content-Length: 0\r\n", "te-gzip-cl": b"Transfer-Encoding: gzip\r\nContent-Length: 16\r\n",
        "te-identity-cl": b"Transfer-Encoding: identity\r\nContent-Length: 16\r\n",
    }
    for name, fields in both.items():
        yield f"te-cl/{name}", post(fields, body)
    yield "te-cl/smuggle-cl-first", post(b"Content-Length: 5\r\n" + TE, smuggle)
    yield "te-cl/smuggle-te-first", post(TE + b"Content-Length: 5\r\n", smuggle)
    yield "te-cl/smuggle-te-upper", post(b"Content-Length: 5\r\nTransfer-Encoding: CHUNKED\r\n", smuggle)
    yield "te-cl/smuggle-te-space", post(b"Content-Length: 5\r\nTransfer-Encoding : chunked\r\n", smuggle)
    yield "te-cl/smuggle-te-xchunked", post(b"Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n", smuggle)
    yield "te-cl/smuggle-chunk-overflow", chunked(b"10000000000000000\r\n\r\n" + SMUGGLED)
    yield "te-cl/http10-te", b"POST /x?@@ HTTP/1.0\r\nHost: a\r\n" + TE + b"\r\n" + body
    yield "te-cl/get-te", b"GET /x?@@ HTTP/1.1\r\nHost: a\r\n" + TE + b"\r\n" + body
    yield "te-cl/get-cl", b"GET /x?@@ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"


def _versions():
    versions = {
        "1.0": b"HTTP/1.0", "1.1": b"HTTP/1.1", "2.0": b"HTTP/2.0", "1.2": b"HTTP/1.2", "1.10": b"HTTP/1.10",
        "01.1": b"HTTP/01.1", "lower": b"http/1.1", "no-minor": b"HTTP/1", "3.0": b"HTTP/3.0", "9.9": b"HTTP/9.9",
        "junk": b"XTTP/1.1", "0.9-named": b"HTTP/0.9", "trailing-space": b"HTTP/1.1 ", "two-spaces": b" HTTP/1.1",
        "extra-token": b"HTTP/1.1 x", "digits-wide": b"HTTP/\xd9\xa1.1",
    }
    for name, v in versions.items():
        yield f"version/{name}", b"GET /x?@@ " + v + b"\r\n" + H + b"\r\n"
    yield "version/0.9", b"GET /x?@@\r\n"
    yield "version/1.0-keep-alive", b"GET /x?@@ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    yield "version/1.1-no-host", b"GET /x?@@ HTTP/1.1\r\n\r\n"
    yield "version/1.0-no-host", b"GET /x?@@ HTTP/1.0\r\n\r\n"


def _targets():
    targets = {
        "origin": b"/x?@@", "origin-double-slash": b"//x?@@", "absolute-http": b"http://a/x?@@",
        "absolute-https": b"https://a/x?@@", "absolute-port": b"http://a:8080/x?@@",
        "absolute-userinfo": b"http://u:p@a/x?@@", "absolute-ftp": b"ftp://a/x?@@",
        "absolute-upper-scheme": b"HTTP://a/x?@@", "absolute-no-path": b"http://a?@@",
        "absolute-empty-host": b"http:///x?@@", "absolute-other-host": b"http://b/x?@@",
        "authority": b"a:80", "asterisk": b"*", "fragment": b"/x?@@#f", "fragment-absolute": b"http://a/x?@@#f",
        "relative": b"x?@@", "empty": b"", "space": b"/x y?@@", "tab": b"/x\ty?@@", "nul": b"/x\x00?@@",
        "del": b"/x\x7f?@@", "obs-text": b"/x\xe9?@@", "percent-nul": b"/x%00?@@", "backslash": b"/x\\y?@@",
        "dot-segments": b"/a/../x?@@", "encoded-slash": b"/a%2fx?@@", "bad-percent": b"/x%zz?@@",
        "long": b"/" + b"x" * 7000 + b"?@@", "at-sign": b"@a/x?@@", "query-only": b"?@@",
    }
    for name, t in targets.items():
        yield f"target/{name}", b"GET " + t + b" HTTP/1.1\r\n" + H + b"\r\n"
    yield "target/options-asterisk", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n"
    yield "target/connect-authority", b"CONNECT a:443 HTTP/1.1\r\n" + H + b"\r\n"
    yield "target/connect-origin", b"CONNECT /x?@@ HTTP/1.1\r\n" + H + b"\r\n"


def _methods():
    methods = {
        "get": b"GET", "post": b"POST", "put": b"PUT", "delete": b"DELETE", "options": b"OPTIONS",
        "patch": b"PATCH", "custom": b"FOO", "lower": b"get", "token-chars": b"X-!#$%&'*+.^_`|~",
        "paren": b"BR(EW", "nul": b"G\x00ET", "del": b"G\x7fET", "obs-text": b"G\xe9T", "slash": b"G/T",
        "long": b"M" * 200, "empty": b"", "tab-separator": b"GET\t",
    }
    for name, m in methods.items():
        sep = b"" if name == "tab-separator" else b" "
        yield f"method/{name}", m + sep + b"/x?@@ HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n"
    yield "method/two-spaces", b"GET  /x?@@ HTTP/1.1\r\n" + H + b"\r\n"
    yield "method/leading-space", b" GET /x?@@ HTTP/1.1\r\n" + H + b"\r\n"


def _header_names():
    names = {
        "token-chars": b"X-!#$%&'*+.^_`|~", "space-inside": b"X Y", "nul": b"X\x00", "paren": b"X(",
        "del": b"X\x7f", "empty": b"", "obs-text": b"\xe9X", "at": b"X@", "slash": b"X/", "colon-only": b":",
        "tab-inside": b"X\tY", "quote": b'X"', "brace": b"X{", "long": b"X" * 9000,
    }
    for name, n in names.items():
        yield f"header-name/{name}", b"GET /x?@@ HTTP/1.1\r\n" + H + n + b": v\r\n\r\n"
    yield "header-name/tab-before-colon", b"GET /x?@@ HTTP/1.1\r\n" + H + b"X\t: v\r\n\r\n"
    yield "header-name/no-colon", b"GET /x?@@ HTTP/1.1\r\n" + H + b"X v\r\n\r\n"
    yield "header-name/many-fields", b"GET /x?@@ HTTP/1.1\r\n" + H + b"".join(b"X%d: v\r\n" % i for i in range(150)) + b"\r\n"


def _repeated_fields():
    """Fields an app reads as one value, sent twice (the issue's singleton
    fields; gunicorn refuses differing values)."""
    for name, fields in {
        "content-type-differ": b"Content-Type: text/plain\r\nContent-Type: text/html\r\n",
        "content-type-same": b"Content-Type: text/plain\r\nContent-Type: text/plain\r\n",
        "authorization-differ": b"Authorization: Basic YTpi\r\nAuthorization: Basic Yzpk\r\n",
        "range-differ": b"Range: bytes=0-1\r\nRange: bytes=2-3\r\n",
        "host-twice": b"Host: b\r\n", "host-empty": b"", "accept-twice": b"Accept: a\r\nAccept: b\r\n",
    }.items():
        head = (b"Host:\r\n" if name == "host-empty" else H) + fields
        yield f"repeated/{name}", b"GET /x?@@ HTTP/1.1\r\n" + head + b"\r\n"


def _pipelining():
    yield "pipeline/cl-then-get", post(b"Content-Length: 5\r\n", b"hello")
    yield "pipeline/chunked-then-get", chunked(b"5\r\nhello\r\n0\r\n\r\n")
    yield "pipeline/crlf-after-body", post(b"Content-Length: 5\r\n", b"hello\r\n")
    yield "pipeline/crlfs-after-body", post(b"Content-Length: 5\r\n", b"hello\r\n\r\n")
    yield "pipeline/chunked-crlf-after", chunked(b"5\r\nhello\r\n0\r\n\r\n\r\n")
    yield "pipeline/three", post(b"Content-Length: 5\r\n", b"hello") + b"GET /y?@@ HTTP/1.1\r\n" + H + b"\r\n"
    yield "pipeline/get-get", b"GET /x?@@ HTTP/1.1\r\n" + H + b"\r\nGET /y?@@ HTTP/1.1\r\n" + H + b"\r\n"
    yield "pipeline/post-no-length", b"POST /x?@@ HTTP/1.1\r\n" + H + b"\r\n"
    yield "pipeline/expect-100", post(b"Content-Length: 5\r\nExpect: 100-continue\r\n", b"hello")
    yield "pipeline/expect-bad", post(b"Content-Length: 5\r\nExpect: 200-ok\r\n", b"hello")
    yield "pipeline/connection-close-first", b"GET /x?@@ HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
    yield "pipeline/http10-then-11", b"GET /x?@@ HTTP/1.0\r\n" + H + b"\r\n"
    yield "pipeline/body-is-request", post(b"Content-Length: %d\r\n" % len(SMUGGLED), SMUGGLED)
    yield "pipeline/nul-after", b"GET /x?@@ HTTP/1.1\r\n" + H + b"\r\n\x00"


def _smuggling_classics():
    """Request smuggling's usual shapes (CL.TE, TE.CL, TE.TE): a request hidden
    in a body shows as /smuggled in whichever app was fooled."""
    body_te = b"0\r\n\r\n" + SMUGGLED
    for name, fields in {
        "cl-te": b"Content-Length: %d\r\n" % len(body_te) + TE,
        "te-te-obfuscated": TE + b"Transfer-Encoding: x\r\n",
        "te-space-name": b"Transfer-Encoding : chunked\r\nContent-Length: 4\r\n",
        "te-vtab": b"Transfer-Encoding:\x0bchunked\r\nContent-Length: 4\r\n",
        "te-fold": b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n",
        "te-lf": b"Transfer-Encoding: chunked\nContent-Length: 4\r\n",
        "te-nul": b"Transfer-Encoding: chunked\x00\r\nContent-Length: 4\r\n",
    }.items():
        yield f"smuggle/{name}", post(fields, body_te)
    inner = b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"
    yield "smuggle/te-cl", post(b"Content-Length: 4\r\n" + TE, inner)
    yield "smuggle/ext-bare-cr", chunked(b"2;a\rb\r\nhi\r\n0\r\n\r\n" + SMUGGLED)
    yield "smuggle/ext-lf-in-quote", chunked(b'2;a="\n0\r\n\r\n"\r\nhi\r\n0\r\n\r\n' + SMUGGLED)
    yield "smuggle/trailer-lf", chunked(b"0\r\nX: y\n\r\n" + SMUGGLED)
    yield "smuggle/size-lf", chunked(b"2\nhi\r\n0\r\n\r\n" + SMUGGLED)


GENERATORS = (_chunk_sizes, _chunk_extensions, _trailers, _bare_cr_lf, _obs_fold, _te_cl, _versions,
              _targets, _methods, _header_names, _repeated_fields, _pipelining, _smuggling_classics)


def build() -> list[Case]:
    """Every case, each followed by the probe, ``@@`` naming its index."""
    out: list[Case] = []
    for gen in GENERATORS:
        for name, raw in gen():
            tag = b"c=%d" % len(out)
            out.append(Case(name, (raw + PROBE).replace(b"@@", tag)))
    names = [c.name for c in out]
    assert len(names) == len(set(names)), "case names must be unique"
    return out


CORPUS = build()

# Where mpmserver gives the app (2xx) what the strictest peer refuses, and
# why that is right; test_framing_corpus.py fails on an undocumented one.
# Classes the issue listed were fixed instead (tests/server/
# test_framing_strict.py), as were two the corpus found: forbidden trailer
# fields (Content-Length, Transfer-Encoding, Host, Trailer: 400) and a head
# naming HTTP/0.9 (505).
_BWS = ("whitespace after the chunk size: Apache and nginx accept it, and every reader that accepts "
        "it reads the same size, so no framing differs (gunicorn and waitress refuse)")
_EMPTY_LINES = ("RFC 9112 2.2: a server SHOULD ignore empty lines before the request line; up to "
                "Apache's 10, CRLF or LF, before any byte of the request, so no boundary moves")
_TE_CL = ("RFC 9112 6.3: a server MAY process Transfer-Encoding alone and MUST then close; mpmserver "
          "frames by chunked, hides Content-Length from the app and closes after the answer (as "
          "Apache), so nothing after the body is ever read as a request (1 response)")
_TE_10 = ("RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing: mpmserver processes it "
          "and closes (as Apache), nothing after the body is read")
_ABSOLUTE = ("issue 25: RFC 9112 3.2.2 says a server MUST accept absolute-form; any scheme and userinfo "
             "as gunicorn and waitress (Apache refuses these two)")
_PATH = ("the path's meaning, not its framing: the app gets PATH_INFO decoded as gunicorn and waitress "
         "give it; Apache's 404/400 come from its file mapping (AllowEncodedSlashes)")
_LIMIT = "within LimitRequestLine 8190, Apache's limit (gunicorn's is 4094)"
_METHOD = ("a method is any token, case-sensitive (RFC 9110 9.1), as Apache; gunicorn allows only "
           "[A-Z0-9$-_.]{3,20}; the app answers 405 for one it does not know")
_EXPECT = ("RFC 9110 10.1.1: a server MAY answer 417 to an unknown expectation; the app sees "
           "HTTP_EXPECT, and the body is read as declared (the probe is answered)")
_SAME = ("the same value twice cannot be read two ways: kept once (issue 25; gunicorn refuses any "
         "repeat, Apache and waitress join them)")
_EMPTY_HOST = ("RFC 9112 3.2: a client MUST send an empty Host where the target URI has no authority; "
               "gunicorn and waitress accept it (Apache refuses)")
EXCEPTIONS: dict[str, str] = {
    "repeated/content-type-same": _SAME, "repeated/host-empty": _EMPTY_HOST,
    "chunk-size/space-after": _BWS, "chunk-size/tab-after": _BWS,
    "bare-cr-lf/leading-crlfs": _EMPTY_LINES, "bare-cr-lf/leading-lf": _EMPTY_LINES,
    "te-cl/te-then-cl": _TE_CL, "te-cl/cl-then-te": _TE_CL, "te-cl/te-cl-zero": _TE_CL,
    "te-cl/smuggle-cl-first": _TE_CL, "te-cl/smuggle-te-first": _TE_CL, "te-cl/smuggle-te-upper": _TE_CL,
    "smuggle/cl-te": _TE_CL, "te-cl/http10-te": _TE_10,
    "target/absolute-userinfo": _ABSOLUTE, "target/absolute-ftp": _ABSOLUTE,
    "target/percent-nul": _PATH, "target/encoded-slash": _PATH, "target/bad-percent": _PATH,
    "target/long": _LIMIT,
    "method/lower": _METHOD, "method/token-chars": _METHOD, "method/long": _METHOD,
    "pipeline/expect-bad": _EXPECT,
}
