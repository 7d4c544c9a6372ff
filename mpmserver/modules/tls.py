"""TLS with mod_ssl's directives and meaning: the server's SSLContext, the
first bytes of a connection judged before any TLS state exists, and what
the app sees (mod_ssl's StdEnvVars).

Which listeners speak TLS (Apache without VirtualHost): ``Listen ADDR https``
makes that listener TLS; ``SSLEngine on`` (the main server's) makes every
Listen line TLS that does not say ``http`` itself, as Apache's main server
is TLS on all its addresses once SSLEngine is on. One certificate serves
them all (there are no virtual hosts).

The context is built when the configuration is read (config.py calls
``build_context``): by the root master before it drops privileges, so that a
key readable only by root works, and again on every restart, so that a
graceful restart loads a renewed certificate and a bad one keeps the old
generation serving (a configuration error, as any other). ``-t`` builds it
too: every file, the key against the certificate, the protocols and ciphers.

Pure apart from reading the certificate files: no sockets; the handshake
itself is the listener's (child/listener/handshake.py).
"""

from __future__ import annotations

import datetime
import os
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any, Iterable

from ..scoreboard import TLS_FAILURES

__all__ = [
    "TLSError", "Protocols", "parse_protocols", "parse_verify_client", "build_context", "speaks_tls",
    "tls_sockets", "classify_hello", "HELLO_INCOMPLETE", "HELLO_TLS", "HELLO_HTTP", "HELLO_GARBAGE",
    "refuses_alpn", "NO_APPLICATION_PROTOCOL_ALERT", "PLAIN_HTTP_REASON", "std_env_vars", "ALPN",
    "failure_reason", "TLS_FAILURES", "parse_pass_phrase_dialog",
]

# ALPN: this server speaks HTTP/1.1 only (no h2).
ALPN = ("http/1.1",)


class TLSError(Exception):
    """A TLS setting that cannot work: ``attr`` names the Config field (so
    config.py names the file, line and directive), str() says why."""

    def __init__(self, attr: str, message: str) -> None:
        super().__init__(message)
        self.attr = attr


# -- SSLProtocol ------------------------------------------------------------------

_VERSIONS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}
_ORDER = list(_VERSIONS)
_NAMES = {"tlsv1": "TLSv1", "tlsv1.1": "TLSv1.1", "tlsv1.2": "TLSv1.2", "tlsv1.3": "TLSv1.3"}


@dataclass(frozen=True)
class Protocols:
    """The TLS versions accepted: a contiguous range (OpenSSL's min and max)."""

    minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3

    def __str__(self) -> str:
        names = [n for n in _ORDER if self.minimum <= _VERSIONS[n] <= self.maximum]
        return " ".join(_NAMES[n] for n in names)


def parse_protocols(spec: str) -> Protocols:
    """mod_ssl's SSLProtocol: ``TLSv1.2 TLSv1.3``, ``all -TLSv1 -TLSv1.1``,
    ``-all +TLSv1.3``. ``all`` is TLSv1 to TLSv1.3 (SSLv3 is gone from
    OpenSSL). ValueError for an unknown name or a set with a gap (OpenSSL
    takes a minimum and a maximum)."""
    chosen: set[str] = set()
    words = spec.split()
    if not words:
        raise ValueError("names no protocol; e.g. SSLProtocol TLSv1.2 TLSv1.3")
    for i, word in enumerate(words):
        sign = word[0] if word[0] in "+-" else ""
        name = word[len(sign):].lower()
        if name == "all":
            names = set(_ORDER)
        elif name in _VERSIONS:
            names = {name}
        elif name in ("sslv2", "sslv3"):
            raise ValueError(f"{word!r}: {name[:3].upper()}v{name[-1]} is insecure and not supported by OpenSSL; "
                             "use TLSv1.2 TLSv1.3")
        else:
            raise ValueError(f"unknown protocol {word!r}; known: all TLSv1 TLSv1.1 TLSv1.2 TLSv1.3 "
                             "(each may be prefixed with + or -)")
        if sign == "-":
            chosen -= names
        elif sign == "+" or i > 0:
            chosen |= names
        else:  # a first word without sign sets the list, as in mod_ssl
            chosen = set(names)
    if not chosen:
        raise ValueError(f"{spec!r} leaves no protocol enabled")
    idx = sorted(_ORDER.index(n) for n in chosen)
    if idx[-1] - idx[0] + 1 != len(idx):
        raise ValueError(f"{spec!r} leaves a gap between versions; OpenSSL takes a contiguous range "
                         "(e.g. TLSv1.2 TLSv1.3)")
    return Protocols(_VERSIONS[_ORDER[idx[0]]], _VERSIONS[_ORDER[idx[-1]]])


# -- SSLVerifyClient --------------------------------------------------------------

_VERIFY = {"none": "none", "optional": "optional", "require": "require",
           # gunicorn's --cert-reqs takes ssl's numbers
           "0": "none", "1": "optional", "2": "require"}


def parse_verify_client(value: str) -> str:
    """``none``, ``optional`` or ``require`` (gunicorn's 0, 1, 2 too)."""
    v = _VERIFY.get(value.lower())
    if v is None:
        if value.lower() == "optional_no_ca":
            raise ValueError("optional_no_ca is not supported (Python's ssl verifies every certificate "
                             "presented); use optional or require")
        raise ValueError(f"{value!r} is not one of none, optional, require")
    return v


# -- which listeners speak TLS ------------------------------------------------------

def speaks_tls(cfg: Any, address: tuple[str, int]) -> bool:
    """Whether a listener speaks TLS: its Listen line's protocol, else SSLEngine."""
    protocol = cfg.listen_protocols.get(address)
    if protocol is not None:
        return protocol == "https"
    return bool(cfg.ssl_engine)


def tls_sockets(cfg: Any, listeners: dict[tuple[str, int], Any]) -> dict[Any, ssl.SSLContext]:
    """The listening sockets that speak TLS, with the context they use."""
    ctx = cfg.ssl_context
    if ctx is None:
        return {}
    return {sock: ctx for address, sock in listeners.items() if speaks_tls(cfg, address)}


# -- the context ----------------------------------------------------------------------

def build_context(cfg: Any) -> tuple[ssl.SSLContext, list[str]]:
    """The server's SSLContext from the SSL* settings, and warnings (an
    expired certificate). Raises TLSError naming the setting at fault."""
    if not cfg.ssl_certificate_file:
        raise TLSError("ssl_engine", "a TLS listener (SSLEngine on or Listen ... https) needs "
                                     "SSLCertificateFile (gunicorn's --certfile)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    protocols = cfg.ssl_protocol
    ctx.minimum_version = protocols.minimum
    ctx.maximum_version = protocols.maximum
    ctx.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    if cfg.ssl_honor_cipher_order:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if not cfg.ssl_session_tickets:
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
    if cfg.ssl_cipher_suite:
        try:
            ctx.set_ciphers(cfg.ssl_cipher_suite)
        except ssl.SSLError:
            raise TLSError("ssl_cipher_suite", f"{cfg.ssl_cipher_suite!r} selects no cipher OpenSSL knows "
                                               "(see openssl ciphers -v)") from None
    ctx.set_alpn_protocols(list(ALPN))
    _load_certificate(ctx, cfg)
    _load_client_ca(ctx, cfg)
    warnings = _expiry_warnings(cfg.ssl_certificate_file)
    key = cfg.ssl_certificate_key_file or cfg.ssl_certificate_file
    if key_readable_by_others(key):
        warnings.append(f"SSLCertificateKeyFile: the private key {key} is readable by every user; the master "
                        "reads it as root, so make it readable by root only (chmod 600)")
    return ctx, warnings


def _readable(attr: str, path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TLSError(attr, f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def _no_passphrase() -> bytes:
    raise TLSError("ssl_certificate_key_file", "is protected by a passphrase, which mpmserver does not ask "
                                               "for on a terminal: give a program that prints it "
                                               "(SSLPassPhraseDialog exec:/path/to/program), or decrypt the key "
                                               "(openssl pkey -in KEY -out PLAIN_KEY) readable by root only")


def parse_pass_phrase_dialog(value: str) -> str:
    """``builtin`` (no passphrase can be given: an encrypted key is refused)
    or ``exec:/absolute/program`` (mod_ssl's: it prints the passphrase)."""
    if value.lower() == "builtin":
        return "builtin"
    if value.startswith("exec:") and os.path.isabs(value[5:]):
        return value
    raise ValueError(f"{value!r} is not builtin or exec:/absolute/path/to/program")


def _run_pass_phrase_program(cfg: Any, key: bytes) -> bytes:
    """mod_ssl's exec: dialog: the program gets servername:port and the key
    type and prints the passphrase on its first line."""
    program = cfg.ssl_pass_phrase_dialog[5:]
    address = next((a for a in cfg.listen if speaks_tls(cfg, a)), ("localhost", 443))
    kind = "EC" if b"BEGIN EC PRIVATE KEY" in key else "DSA" if b"BEGIN DSA" in key else "RSA"
    try:
        out = subprocess.run([program, f"{address[0]}:{address[1]}", kind], capture_output=True, timeout=30,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TLSError("ssl_pass_phrase_dialog", f"cannot run {program}: {exc}") from None
    if out.returncode != 0:
        raise TLSError("ssl_pass_phrase_dialog", f"{program} exited with status {out.returncode}")
    return out.stdout.splitlines()[0] if out.stdout else b""


def _load_certificate(ctx: ssl.SSLContext, cfg: Any) -> None:
    cert_path = cfg.ssl_certificate_file
    cert = _readable("ssl_certificate_file", cert_path, "certificate")
    if b"-----BEGIN" not in cert or b"CERTIFICATE-----" not in cert:
        raise TLSError("ssl_certificate_file", f"{cert_path} holds no PEM certificate")
    key_path = cfg.ssl_certificate_key_file or cert_path
    key_attr = "ssl_certificate_key_file" if cfg.ssl_certificate_key_file else "ssl_certificate_file"
    key = _readable(key_attr, key_path, "private key")
    if b"PRIVATE KEY-----" not in key:
        raise TLSError(key_attr, f"{key_path} holds no PEM private key"
                       + ("" if cfg.ssl_certificate_key_file else "; name it with SSLCertificateKeyFile"))
    password: Any = _no_passphrase
    if b"ENCRYPTED" in key:
        if cfg.ssl_pass_phrase_dialog == "builtin":
            _no_passphrase()
        phrase = _run_pass_phrase_program(cfg, key)
        password = lambda: phrase  # noqa: E731
    chain_file = None
    if cfg.ssl_certificate_chain_file:
        # mod_ssl's chain: sent after the certificate. OpenSSL loads a chain
        # from the certificate's file, so the two are given to it as one.
        chain = _readable("ssl_certificate_chain_file", cfg.ssl_certificate_chain_file, "certificate chain")
        chain_file = tempfile.NamedTemporaryFile(prefix="mpmserver-chain-", suffix=".pem")
        chain_file.write(cert.rstrip(b"\n") + b"\n" + chain)
        chain_file.flush()
    try:
        ctx.load_cert_chain(chain_file.name if chain_file else cert_path, key_path, password=password)
    except ssl.SSLError as exc:
        if password is not _no_passphrase and "KEY_VALUES_MISMATCH" not in str(exc):
            raise TLSError("ssl_pass_phrase_dialog", f"the passphrase {cfg.ssl_pass_phrase_dialog[5:]} printed "
                                                     f"does not decrypt {key_path}: {exc.reason or exc}") from None
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise TLSError(key_attr, f"the private key {key_path} does not match the certificate "
                                     f"{cert_path}") from None
        attr = "ssl_certificate_chain_file" if chain_file else "ssl_certificate_file"
        raise TLSError(attr, f"OpenSSL refuses {cert_path} with {key_path}: {exc.reason or exc}") from None
    finally:
        if chain_file is not None:
            chain_file.close()


def _load_client_ca(ctx: ssl.SSLContext, cfg: Any) -> None:
    verify = cfg.ssl_verify_client
    ca = cfg.ssl_ca_certificate_file
    if verify == "none":
        return
    if not ca:
        raise TLSError("ssl_verify_client", f"SSLVerifyClient {verify} needs SSLCACertificateFile "
                                            "(gunicorn's --ca-certs): the CAs client certificates are "
                                            "checked against")
    _readable("ssl_ca_certificate_file", ca, "CA certificates")
    try:
        ctx.load_verify_locations(cafile=ca)
    except ssl.SSLError as exc:
        raise TLSError("ssl_ca_certificate_file", f"{ca}: {exc.reason or exc}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED if verify == "require" else ssl.CERT_OPTIONAL


def _expiry_warnings(cert_path: str, now: datetime.datetime | None = None) -> list[str]:
    try:
        info = ssl._ssl._test_decode_cert(cert_path)  # type: ignore[attr-defined]
        not_after = datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(info["notAfter"]),
                                                    datetime.timezone.utc)
    except (AttributeError, KeyError, ValueError, ssl.SSLError, OSError):
        return []
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not_after <= now:
        return [f"SSLCertificateFile: the certificate {cert_path} expired on {not_after:%Y-%m-%d %H:%M} UTC; "
                "clients will refuse it"]
    return []


def key_readable_by_others(path: str | None) -> bool:
    """A key file any user may read (mod_ssl's advice: root only)."""
    try:
        return bool(path) and bool(os.stat(path).st_mode & 0o004)
    except OSError:
        return False


# -- the first bytes of a connection ---------------------------------------------------

HELLO_INCOMPLETE, HELLO_TLS, HELLO_HTTP, HELLO_GARBAGE = "incomplete", "tls", "http", "garbage"
_RECORD_MAX = 16384 + 2048
_HTTP_START = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def classify_hello(data: bytes) -> tuple[str, int, list[bytes] | None]:
    """What a connection's first bytes are: (kind, bytes needed, ALPN list).

    HELLO_INCOMPLETE with the bytes needed to judge (the first record whole);
    HELLO_TLS with the protocols the ClientHello offers by ALPN (None when it
    offers none, or when its hello spans records and the list is not read:
    OpenSSL then decides); HELLO_HTTP for a plain HTTP request (OpenSSL's
    SSL_R_HTTP_REQUEST test: a method in capitals); HELLO_GARBAGE otherwise."""
    if not data:
        return HELLO_INCOMPLETE, 5, None
    if data[0] != 0x16:
        return _plain(data[:5])
    if len(data) < 5:
        return HELLO_INCOMPLETE, 5, None
    length = int.from_bytes(data[3:5], "big")
    if data[1] != 3 or not 4 <= length <= _RECORD_MAX:
        return HELLO_GARBAGE, 0, None
    if len(data) < 5 + length:
        return HELLO_INCOMPLETE, 5 + length, None
    if data[5] != 1:  # not a ClientHello
        return HELLO_GARBAGE, 0, None
    return HELLO_TLS, 5 + length, _alpn(data[9:5 + length], int.from_bytes(data[6:9], "big"))


def _plain(start: bytes) -> tuple[str, int, None]:
    """A request method in capitals (then a space) is plain HTTP."""
    space = start.find(b" ")
    method = start if space < 0 else start[:space]
    if not all(b in _HTTP_START for b in method) or (0 <= space < 3):
        return HELLO_GARBAGE, 0, None
    if space < 0 and len(start) < 5:
        return HELLO_INCOMPLETE, 5, None
    return HELLO_HTTP, 5, None


def _alpn(body: bytes, hello_length: int) -> list[bytes] | None:
    """The ALPN protocols of a ClientHello body (after its 4-byte header)."""
    if hello_length > len(body):
        return None  # continued in the next record
    try:
        i = 2 + 32  # client_version, random
        i += 1 + body[i]  # session_id
        i += 2 + int.from_bytes(body[i:i + 2], "big")  # cipher_suites
        i += 1 + body[i]  # compression_methods
        end = i + 2 + int.from_bytes(body[i:i + 2], "big")
        i += 2
        while i + 4 <= end:
            kind = int.from_bytes(body[i:i + 2], "big")
            size = int.from_bytes(body[i + 2:i + 4], "big")
            i += 4
            if kind == 16:  # application_layer_protocol_negotiation
                names, j, stop = [], i + 2, i + size
                while j < stop:
                    n = body[j]
                    names.append(bytes(body[j + 1:j + 1 + n]))
                    j += 1 + n
                return names
            i += size
    except IndexError:
        return None
    return None


def refuses_alpn(offered: list[bytes] | None) -> bool:
    """A client that asks by ALPN only for protocols this server does not
    speak (h2 alone): refused with no_application_protocol (RFC 7301 3.2)."""
    return offered is not None and not any(p in (b"http/1.1", b"http/1.0") for p in offered)


# A fatal no_application_protocol alert (120), as a TLS 1.2 record: before
# the ServerHello every alert is plaintext.
NO_APPLICATION_PROTOCOL_ALERT = b"\x15\x03\x03\x00\x02\x02\x78"
# What Apache answers a plain HTTP request on an https port (with a 400).
PLAIN_HTTP_REASON = ("You're speaking plain HTTP to an SSL-enabled server port.\n"
                     "Instead use the HTTPS scheme to access this URL, please.")


# -- why a handshake failed, as the scoreboard counts it --------------------------------

_PROTOCOL_REASONS = ("UNSUPPORTED_PROTOCOL", "WRONG_VERSION_NUMBER", "NO_SHARED_CIPHER", "NO_PROTOCOLS_AVAILABLE",
                     "VERSION_TOO_LOW", "VERSION_TOO_HIGH", "INAPPROPRIATE_FALLBACK", "NO_SHARED_GROUP")
_CERTIFICATE_REASONS = ("CERTIFICATE", "UNKNOWN_CA", "PEER_DID_NOT_RETURN", "BAD_CERTIFICATE", "ACCESS_DENIED")


def failure_reason(openssl_reason: str) -> str:
    """The TLS_FAILURES name of an OpenSSL reason (exc.reason): the client's
    protocol versions or ciphers, a certificate (the client's refused, or
    ours refused by the client), else "other"."""
    reason = openssl_reason.upper()
    if any(r in reason for r in _PROTOCOL_REASONS):
        return "protocol"
    if any(r in reason for r in _CERTIFICATE_REASONS):
        return "certificate"
    return "other"


assert set(TLS_FAILURES) >= {"protocol", "certificate", "other"}


# -- what the app sees -----------------------------------------------------------------

def std_env_vars(version: str | None, cipher: tuple[str, str, int] | None, resumed: bool,
                 sni: str | None, peer_der: bytes | None, peer: dict | None) -> dict[str, str]:
    """mod_ssl's StdEnvVars for one connection (computed once per connection,
    merged into each request's environ), with wsgi.url_scheme https."""
    env = {
        "wsgi.url_scheme": "https",
        "HTTPS": "on",
        "SSL_PROTOCOL": version or "",
        "SSL_CIPHER": cipher[0] if cipher else "",
        "SSL_SESSION_RESUMED": "Resumed" if resumed else "Initial",
        "SSL_CLIENT_VERIFY": "NONE",
    }
    if cipher:
        env["SSL_CIPHER_USEKEYSIZE"] = env["SSL_CIPHER_ALGKEYSIZE"] = str(cipher[2])
    if sni:
        env["SSL_TLS_SNI"] = sni
    if peer_der:
        env["SSL_CLIENT_VERIFY"] = "SUCCESS"  # OpenSSL refused the handshake otherwise
        env["SSL_CLIENT_CERT"] = ssl.DER_cert_to_PEM_cert(peer_der)
        if peer:
            env["SSL_CLIENT_S_DN"] = _dn(peer.get("subject", ()))
            env["SSL_CLIENT_I_DN"] = _dn(peer.get("issuer", ()))
            if "serialNumber" in peer:
                env["SSL_CLIENT_M_SERIAL"] = peer["serialNumber"]
    return env


def _dn(rdns: Iterable[Iterable[tuple[str, str]]]) -> str:
    """A distinguished name as mod_ssl writes it (RFC 2253: most specific first)."""
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L", "emailAddress": "emailAddress"}
    parts = ["+".join(f"{short.get(k, k)}={_dn_escape(v)}" for k, v in rdn) for rdn in rdns]
    return ",".join(reversed(parts))


def _dn_escape(value: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    return out
