"""modules/tls.py: SSLProtocol and SSLVerifyClient, the first record of a
connection judged, StdEnvVars, and the context built from a configuration
(real certificate files from a throwaway CA)."""

import datetime
import ssl

import pytest

from mpmserver.config import ConfigError, load
from mpmserver.modules import tls

trustme = pytest.importorskip("trustme", reason="trustme (the test extra) makes the certificates")


# -- SSLProtocol, SSLVerifyClient ------------------------------------------------------

@pytest.mark.parametrize("spec, low, high", [
    ("TLSv1.2 TLSv1.3", "TLSv1_2", "TLSv1_3"),
    ("all -TLSv1 -TLSv1.1", "TLSv1_2", "TLSv1_3"),
    ("-all +TLSv1.3", "TLSv1_3", "TLSv1_3"),
    ("TLSv1.3", "TLSv1_3", "TLSv1_3"),
    ("all", "TLSv1", "TLSv1_3"),
    ("tlsv1.2", "TLSv1_2", "TLSv1_2"),
])
def test_ssl_protocol(spec, low, high):
    p = tls.parse_protocols(spec)
    assert (p.minimum, p.maximum) == (ssl.TLSVersion[low], ssl.TLSVersion[high])


def test_ssl_protocol_default_is_tls12_and_13():
    assert str(tls.Protocols()) == "TLSv1.2 TLSv1.3"


@pytest.mark.parametrize("spec, fragment", [
    ("TLSv1.4", "unknown protocol 'TLSv1.4'"),
    ("SSLv3", "insecure"),
    ("TLSv1 TLSv1.3", "gap"),
    ("-all", "no protocol"),
])
def test_ssl_protocol_errors(spec, fragment):
    with pytest.raises(ValueError, match=fragment):
        tls.parse_protocols(spec)


def test_verify_client_names_and_gunicorn_numbers():
    assert [tls.parse_verify_client(v) for v in ("none", "Optional", "REQUIRE", "0", "1", "2")] == [
        "none", "optional", "require", "none", "optional", "require"]
    with pytest.raises(ValueError, match="optional_no_ca is not supported"):
        tls.parse_verify_client("optional_no_ca")


# -- the first record ----------------------------------------------------------------

def client_hello(alpn=None, sni="example.com"):
    """A real ClientHello, as Python's ssl (OpenSSL) writes it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_a_whole_client_hello_and_its_alpn():
    hello = client_hello(["h2", "http/1.1"])
    kind, needed, alpn = tls.classify_hello(hello)
    assert (kind, needed, alpn) == (tls.HELLO_TLS, len(hello), [b"h2", b"http/1.1"])
    assert not tls.refuses_alpn(alpn)


def test_h2_only_is_refused_and_no_alpn_is_not():
    assert tls.refuses_alpn(tls.classify_hello(client_hello(["h2"]))[2])
    assert tls.classify_hello(client_hello())[2] is None
    assert not tls.refuses_alpn(None)


def test_a_partial_hello_says_how_much_it_needs():
    hello = client_hello()
    assert tls.classify_hello(hello[:3]) == (tls.HELLO_INCOMPLETE, 5, None)
    assert tls.classify_hello(hello[:100]) == (tls.HELLO_INCOMPLETE, len(hello), None)


@pytest.mark.parametrize("data, kind", [
    (b"GET / HTTP/1.1\r\n", tls.HELLO_HTTP),
    (b"POST /x HTTP/1.1\r\n", tls.HELLO_HTTP),
    (b"GE", tls.HELLO_INCOMPLETE),
    (b"\x00\x01garbage", tls.HELLO_GARBAGE),
    (b"\x16\x09\x01\x00\x10", tls.HELLO_GARBAGE),  # not version 3
    (b"\x16\x03\x01\xff\xff", tls.HELLO_GARBAGE),  # longer than a record
    (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", tls.HELLO_GARBAGE),  # a ServerHello
    (b"hello world", tls.HELLO_GARBAGE),
])
def test_what_is_not_a_client_hello(data, kind):
    assert tls.classify_hello(data)[0] == kind


def test_a_mangled_hello_leaves_alpn_to_openssl():
    hello = bytearray(client_hello(["h2"]))
    hello[5 + 4 + 2 + 32] = 250  # a session id longer than the hello
    assert tls.classify_hello(bytes(hello))[0] == tls.HELLO_TLS


@pytest.mark.parametrize("reason, kind", [
    ("UNSUPPORTED_PROTOCOL", "protocol"), ("NO_SHARED_CIPHER", "protocol"), ("WRONG_VERSION_NUMBER", "protocol"),
    ("TLSV1_ALERT_UNKNOWN_CA", "certificate"), ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "certificate"),
    ("SSLV3_ALERT_BAD_CERTIFICATE", "certificate"), ("UNEXPECTED_EOF_WHILE_READING", "other"),
])
def test_failure_reasons(reason, kind):
    assert tls.failure_reason(reason) == kind and kind in tls.TLS_FAILURES


# -- StdEnvVars ---------------------------------------------------------------------------

def test_std_env_vars_without_a_client_certificate():
    env = tls.std_env_vars("TLSv1.3", ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128), False, "example.com",
                           None, None)
    assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
    assert (env["SSL_PROTOCOL"], env["SSL_CIPHER"], env["SSL_SESSION_RESUMED"], env["SSL_TLS_SNI"],
            env["SSL_CLIENT_VERIFY"]) == ("TLSv1.3", "TLS_AES_128_GCM_SHA256", "Initial", "example.com", "NONE")
    assert "SSL_CLIENT_CERT" not in env


def test_std_env_vars_with_a_client_certificate():
    ca = trustme.CA()
    cert = ca.issue_cert("alice", common_name="alice, Ltd")
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    peer = {"subject": ((("organizationName", "Org"),), (("commonName", "alice, Ltd"),)),
            "issuer": ((("commonName", "CA"),),), "serialNumber": "01"}
    env = tls.std_env_vars("TLSv1.2", ("ECDHE", "TLSv1.2", 256), True, None, der, peer)
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS" and env["SSL_SESSION_RESUMED"] == "Resumed"
    assert env["SSL_CLIENT_S_DN"] == "CN=alice\\, Ltd,O=Org"  # RFC 2253, as mod_ssl
    assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    assert "SSL_TLS_SNI" not in env


# -- the context from a configuration --------------------------------------------------------

@pytest.fixture
def pki(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem",
             "leaf": tmp_path / "leaf.pem", "chain": tmp_path / "chain.pem"}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.private_key_pem.write_to_path(paths["key"])
    paths["key"].chmod(0o600)  # as a key should be (else a warning)
    with open(paths["cert"], "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    cert.cert_chain_pems[0].write_to_path(paths["leaf"])
    paths["chain"].write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems[1:]) or ca.cert_pem.bytes())
    paths["ca_obj"] = ca
    return paths


def conf(tmp_path, *lines):
    path = tmp_path / "mpm.conf"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_listen_https_builds_the_context(tmp_path, pki):
    cfg, warnings = load(conf(tmp_path, "Listen 127.0.0.1:8443 https", "Listen 127.0.0.1:8080",
                              f"SSLCertificateFile {pki['cert']}", f"SSLCertificateKeyFile {pki['key']}"))
    assert warnings == []
    assert isinstance(cfg.ssl_context, ssl.SSLContext)
    assert cfg.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls.speaks_tls(cfg, ("127.0.0.1", 8443)) and not tls.speaks_tls(cfg, ("127.0.0.1", 8080))


def test_ssl_engine_on_makes_every_listen_tls_but_those_marked_http(tmp_path, pki):
    cfg, _ = load(conf(tmp_path, "SSLEngine on", "Listen 8443", "Listen 8080 http",
                       f"SSLCertificateFile {pki['cert']}", f"SSLCertificateKeyFile {pki['key']}"))
    assert tls.speaks_tls(cfg, ("0.0.0.0", 8443)) and not tls.speaks_tls(cfg, ("0.0.0.0", 8080))
    socks = tls.tls_sockets(cfg, {("0.0.0.0", 8443): "A", ("0.0.0.0", 8080): "B"})
    assert socks == {"A": cfg.ssl_context}


def test_no_tls_listener_reads_no_certificate(tmp_path):
    cfg, _ = load(conf(tmp_path, "Listen 8080", "SSLCertificateFile /nonexistent.pem"))
    assert cfg.ssl_context is None


def test_a_relative_certificate_path_is_relative_to_the_file(tmp_path, pki):
    cfg, _ = load(conf(tmp_path, "Listen 8443 https", "SSLCertificateFile cert.pem", "SSLCertificateKeyFile key.pem"))
    assert cfg.ssl_certificate_file == str(tmp_path / "cert.pem")


def test_a_separate_chain_file(tmp_path, pki):
    cfg, _ = load(conf(tmp_path, "Listen 8443 https", f"SSLCertificateFile {pki['leaf']}",
                       f"SSLCertificateKeyFile {pki['key']}", f"SSLCertificateChainFile {pki['chain']}"))
    assert cfg.ssl_context is not None


def test_gunicorn_flags_are_aliases(tmp_path, pki):
    import argparse

    from mpmserver import config as C

    parser = argparse.ArgumentParser()
    C.add_arguments(parser)
    ns = parser.parse_args(["--certfile", str(pki["cert"]), "--keyfile", str(pki["key"]),
                            "--ca-certs", str(pki["ca"]), "--cert-reqs", "2", "--listen", "127.0.0.1:8443 https",
                            "--ciphers", "ECDHE+AESGCM"])
    cfg, _ = load(None, C.overrides_from_args(ns))
    assert cfg.ssl_verify_client == "require" and cfg.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert cfg.ssl_cipher_suite == "ECDHE+AESGCM"


def error(tmp_path, *lines):
    with pytest.raises(ConfigError) as info:
        load(conf(tmp_path, *lines))
    return str(info.value)


def test_missing_certificate_names_file_line_and_directive(tmp_path, pki):
    msg = error(tmp_path, "Listen 8443 https", f"SSLCertificateKeyFile {pki['key']}",
                "SSLCertificateFile /nonexistent/cert.pem")
    assert msg.startswith(f"Syntax error on line 3 of {tmp_path / 'mpm.conf'}: SSLCertificateFile: ")
    assert "cannot read the certificate /nonexistent/cert.pem: No such file or directory" in msg


def test_https_without_a_certificate_points_at_the_listen_line(tmp_path):
    msg = error(tmp_path, "# TLS", "Listen 8443 https")
    assert msg.startswith(f"Syntax error on line 2 of {tmp_path / 'mpm.conf'}: Listen: ")
    assert "needs SSLCertificateFile" in msg


def test_a_key_that_does_not_match(tmp_path, pki):
    other = trustme.CA().issue_cert("x")
    other.private_key_pem.write_to_path(tmp_path / "other.key")
    msg = error(tmp_path, "Listen 8443 https", f"SSLCertificateFile {pki['cert']}",
                f"SSLCertificateKeyFile {tmp_path / 'other.key'}")
    assert "line 3" in msg and "SSLCertificateKeyFile: " in msg and "does not match the certificate" in msg


def test_a_passphrase_protected_key_is_refused(tmp_path, pki):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki["key"].read_bytes(), None)
    (tmp_path / "enc.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    msg = error(tmp_path, "Listen 8443 https", f"SSLCertificateFile {pki['cert']}",
                f"SSLCertificateKeyFile {tmp_path / 'enc.key'}")
    assert "SSLCertificateKeyFile: is protected by a passphrase" in msg


def test_a_passphrase_from_an_exec_dialog(tmp_path, pki):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki["key"].read_bytes(), None)
    (tmp_path / "enc.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret")))
    (tmp_path / "enc.key").chmod(0o600)
    prog = tmp_path / "phrase.sh"
    prog.write_text('#!/bin/sh\necho "$1 $2" > "$(dirname "$0")/args"\necho s3cret\n')
    prog.chmod(0o700)
    lines = ("Listen 127.0.0.1:8443 https", f"SSLCertificateFile {pki['cert']}",
             f"SSLCertificateKeyFile {tmp_path / 'enc.key'}")
    cfg, _ = load(conf(tmp_path, *lines, f"SSLPassPhraseDialog exec:{prog}"))
    assert cfg.ssl_context is not None
    # mod_ssl's arguments: servername:port, and the key type (an encrypted
    # PKCS#8 header names none: RSA, as mod_ssl says for all but EC and DSA)
    assert (tmp_path / "args").read_text() == "127.0.0.1:8443 RSA\n"
    prog.write_text("#!/bin/sh\necho wrong\n")
    msg = error(tmp_path, *lines, f"SSLPassPhraseDialog exec:{prog}")
    assert "line 4" in msg and "SSLPassPhraseDialog: the passphrase" in msg and "does not decrypt" in msg
    prog.write_text("#!/bin/sh\nexit 3\n")
    assert "exited with status 3" in error(tmp_path, *lines, f"SSLPassPhraseDialog exec:{prog}")
    assert "is not builtin or exec:/absolute" in error(tmp_path, "SSLPassPhraseDialog exec:relative")


def test_an_unreadable_key(tmp_path, pki):
    msg = error(tmp_path, "Listen 8443 https", f"SSLCertificateFile {pki['cert']}",
                f"SSLCertificateKeyFile {tmp_path}")  # a directory
    assert "SSLCertificateKeyFile: cannot read the private key" in msg


def test_an_unknown_protocol_names_its_line(tmp_path):
    msg = error(tmp_path, "Listen 8080", "SSLProtocol TLSv1.2 TLSv1.5")
    assert "line 2" in msg and "SSLProtocol: unknown protocol 'TLSv1.5'" in msg


def test_a_cipher_list_that_selects_nothing(tmp_path, pki):
    msg = error(tmp_path, "Listen 8443 https", f"SSLCertificateFile {pki['cert']}",
                f"SSLCertificateKeyFile {pki['key']}", "SSLCipherSuite NOTACIPHER")
    assert "line 4" in msg and "SSLCipherSuite: 'NOTACIPHER' selects no cipher" in msg


def test_verify_client_needs_a_ca(tmp_path, pki):
    msg = error(tmp_path, "Listen 8443 https", f"SSLCertificateFile {pki['cert']}",
                f"SSLCertificateKeyFile {pki['key']}", "SSLVerifyClient require")
    assert "line 4" in msg and "SSLVerifyClient: SSLVerifyClient require needs SSLCACertificateFile" in msg


def test_an_expired_certificate_is_a_warning(tmp_path, pki):
    old = pki["ca_obj"].issue_cert("127.0.0.1", not_before=datetime.datetime(2020, 1, 1),
                                   not_after=datetime.datetime(2021, 1, 1))
    old.cert_chain_pems[0].write_to_path(tmp_path / "old.pem")
    old.private_key_pem.write_to_path(tmp_path / "old.key")
    cfg, warnings = load(conf(tmp_path, "Listen 8443 https", f"SSLCertificateFile {tmp_path / 'old.pem'}",
                              f"SSLCertificateKeyFile {tmp_path / 'old.key'}"))
    assert cfg.ssl_context is not None
    assert any("expired on 2021-01-01" in w for w in warnings)


def test_a_key_every_user_can_read_is_a_warning(tmp_path, pki):
    lines = ("Listen 8443 https", f"SSLCertificateFile {pki['cert']}", f"SSLCertificateKeyFile {pki['key']}")
    pki["key"].chmod(0o600)
    assert load(conf(tmp_path, *lines))[1] == []
    pki["key"].chmod(0o644)
    assert any("readable by every user" in w for w in load(conf(tmp_path, *lines))[1])


def test_options_reach_the_context(tmp_path, pki):
    cfg, _ = load(conf(tmp_path, "Listen 8443 https", f"SSLCertificateFile {pki['cert']}",
                       f"SSLCertificateKeyFile {pki['key']}", "SSLProtocol -all +TLSv1.3",
                       "SSLHonorCipherOrder on", "SSLSessionTickets off"))
    ctx = cfg.ssl_context
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE and ctx.options & ssl.OP_NO_TICKET


def test_https_on_a_unix_socket_is_refused(tmp_path):
    msg = error(tmp_path, f"Listen unix:{tmp_path}/s.sock https")
    assert "https on a unix socket is not supported" in msg
