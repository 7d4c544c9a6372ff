"""The differential framing corpus's pure parts (tests/external/
framing_corpus.py, tests/support/framing.py), without servers: the corpus
is well formed, and answers are split and classified as a reader expects."""

from __future__ import annotations

import json
from collections import Counter

from tests.external.framing_corpus import CORPUS, EXCEPTIONS, PROBE
from tests.support.framing import Answer, classify, desyncs, split_responses

ECHO = b'{"h": "e3b0c44298fc", "m": "GET", "n": 0, "p": "/probe", "q": "c=1"}'


def test_corpus_has_a_few_hundred_cases_in_every_class_each_ending_with_its_probe():
    assert 250 <= len(CORPUS) <= 400
    classes = Counter(c.cls for c in CORPUS)
    for cls in ("chunk-size", "chunk-ext", "trailer", "bare-cr-lf", "obs-fold", "content-length",
                "transfer-encoding", "te-cl", "version", "target", "method", "header-name", "repeated", "pipeline",
                "smuggle"):
        assert classes[cls] >= 5 or cls == "obs-fold" and classes[cls] >= 4, (cls, classes)
    for i, case in enumerate(CORPUS):
        assert case.raw.endswith(PROBE.replace(b"@@", b"c=%d" % i)), case.name
        assert b"@@" not in case.raw
        assert case.requests >= 2, case.name


def test_every_documented_exception_names_a_case():
    names = {c.name for c in CORPUS}
    assert set(EXCEPTIONS) <= names


def test_responses_are_split_by_their_framing():
    one = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ECHO), ECHO)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    cont = b"HTTP/1.1 100 Continue\r\n\r\n"
    # (bodies as framed: the echo app's answers have a Content-Length)
    assert split_responses(cont + one + chunked) == [(200, ECHO), (200, b"3\r\nabc\r\n0\r\n\r\n")]
    assert split_responses(one[:-3]) == []  # cut short: not a response
    answer = classify(cont + one + b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    assert (answer.status, answer.responses, answer.accepted) == (200, 2, True)
    assert answer.seen == (("GET", "/probe", "c=1", 0, "e3b0c44298fc"),)


def test_no_answer_and_an_http_0_9_answer():
    assert classify(b"").short() == "-x0"
    assert not classify(b"").accepted
    assert classify(ECHO).seen[0][1] == "/probe"  # the body alone (nginx answering HTTP/0.9)


def test_desyncs_are_the_requests_the_app_saw_unanswered_or_answered_elsewhere():
    probe0 = ("GET", "/probe", "c=0", 0, "e3b0c44298fc")
    probe1 = ("GET", "/probe", "c=1", 0, "e3b0c44298fc")
    smuggled = ("GET", "/smuggled", "c=1", 0, "e3b0c44298fc")

    def line(s):
        return json.dumps(dict(zip("mpqnh", s)))
    got = [Answer(200, 1, (probe0,)), Answer(200, 1, (probe1,))]
    assert desyncs(got, [line(probe0), line(probe1)]) == []
    # A request hidden in case 1's body reached the app: nobody was answered it.
    assert desyncs(got, [line(probe0), line(probe1), line(smuggled)]) == [
        (1, f"the app saw {smuggled} but no client got its answer")]
    # Case 1's answer went to case 0's connection (a proxy's queue shifted).
    crossed = [Answer(200, 2, (probe0, probe1)), Answer(None, 0, ())]
    assert desyncs(crossed, [line(probe0), line(probe1)]) == [
        (0, f"answer to another connection's request: {probe1}")]
