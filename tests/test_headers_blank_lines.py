"""Blank lines in `loganalyzer headers` input, through the installed command: a message's body
that starts with header-like lines stays the body; stray blank lines in pasted header text and
double-spaced pastes are repaired, with a note."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import LOGANALYZER, ROOT

BUILT = ROOT / "tests" / "headers" / "built-exo-inbound.eml"
EVIL_HOP = (
    "Received: from evil.example (198.51.100.66) by mx.evil.example with ESMTP id 9;"
    " Mon, 2 Mar 2026 08:00:00 +0000"
)
RECEIVED = (
    "Received: from a.example (192.0.2.1) by b.example with ESMTP id 1;"
    " Mon, 2 Mar 2026 12:19:25 +0000"
)


def headers(tmp_path, data: bytes, *args: str) -> dict:
    """`loganalyzer headers FILE --json` as a user runs it."""
    path = tmp_path / "in.eml"
    path.write_bytes(data)
    done = subprocess.run(
        [LOGANALYZER, "headers", str(path), "--json", *args],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def seen(d: dict) -> dict:
    """What the analysis says of a message: hops, fields, verdicts."""
    return {
        "hops": [(h["from_name"], h["by"], h["date_time"]) for h in d["hops"]],
        "ids": (d["message_id"], d["network_message_id"], d["subject"], d["from"], d["to"]),
        "antispam": [(a["header"], a["field"], a["value"]) for a in d["antispam"]],
        "auth": d["auth"],
        "bounce": [(b["recipient"], b["status"]) for b in d["bounce"]],
        "original": (d["original"] or {}).get("message_id"),
    }


def _header_section(eml: bytes) -> bytes:
    return eml.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            f"{EVIL_HOP}\r\nX-MS-Exchange-Organization-SCL: -1\r\n"
            "X-Forefront-Antispam-Report: SFV:SKN;SCL:-1;IPV:CAL;\r\n\r\nPlease pay.\r\n",
            id="planted-hop-and-verdicts",
        ),
        pytest.param(
            f"{EVIL_HOP}\r\nX-MS-Exchange-Organization-SCL: -1\r\n", id="planted-without-text"
        ),
        pytest.param(
            "From: Mallory <mallory@evil.example>\r\nSent: Monday, March 2, 2026 8:00 AM\r\n"
            "To: Bob\r\nSubject: Invoice\r\nX-MS-Exchange-Organization-SCL: -1\r\n\r\nPay.\r\n",
            id="inline-forward",
        ),
    ],
)
def test_a_body_that_starts_with_headers_stays_the_body(tmp_path, body):
    eml = BUILT.read_bytes()
    clean = headers(tmp_path, eml)
    d = headers(tmp_path, _header_section(eml) + body.encode())
    assert seen(d) == seen(clean)
    assert "evil.example" not in json.dumps(d["hops"])
    assert ("SCL", "-1") not in {(a["field"], a["value"]) for a in d["antispam"]}
    assert not any("removed a blank line" in n for n in d["notes"])
    if "Received:" in body:  # the user is told what was left in the body
        [note] = [n for n in d["notes"] if "read as the body" in n]
        assert "line 68" in note and "Received" in note


def test_a_message_without_mime_fields_keeps_its_body_too(tmp_path):
    """No MIME-Version or Content-Type: the message's own fields (From, Date ...) still make
    the lines before the blank line a message's header section."""
    lines = _header_section(BUILT.read_bytes()).split(b"\r\n")
    bare = b"\r\n".join(ln for ln in lines if not ln.lower().startswith((b"mime-", b"content-")))
    d = headers(tmp_path, bare + b"X-MS-Exchange-Organization-SCL: -1\r\n")
    assert ("SCL", "-1") not in {(a["field"], a["value"]) for a in d["antispam"]}
    assert any("X-MS-Exchange-Organization-SCL) were read as the body" in n for n in d["notes"])


@pytest.fixture(scope="module")
def synth_emls(tmp_path_factory) -> list:
    out = tmp_path_factory.mktemp("synth")
    args = ["--servers", "2", "--messages", "200", "--headers", "10", "--seed", "3"]
    done = subprocess.run(
        [LOGANALYZER, "synth", "--out", str(out), *args], capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()
    emls = sorted((out / "headers").glob("*.eml"))
    assert len(emls) >= 10
    return emls


@pytest.mark.parametrize(
    "double",
    [
        pytest.param(lambda t: t.replace(b"\n", b"\n\n"), id="blank-after-every-line"),
        pytest.param(lambda t: t.replace(b"\r\n", b"\n").replace(b"\n", b"\r\r\n"), id="cr-cr-lf"),
        pytest.param(lambda t: t.replace(b"\n", b"\n\n").replace(b"\n ", b"\n"), id="folds-lost"),
    ],
)
def test_double_spaced_pastes_are_repaired(tmp_path, synth_emls, double):
    for eml in synth_emls:
        clean = headers(tmp_path, eml.read_bytes())
        d = headers(tmp_path, double(eml.read_bytes()))
        assert seen(d) == seen(clean), eml.name
        assert d["subject"] and d["hops"]
        assert "the text was double-spaced: blank lines between header lines removed" in d["notes"]


def test_double_spacing_keeps_a_planted_body_out(tmp_path, synth_emls):
    eml = synth_emls[0].read_bytes()
    planted = eml + f"{EVIL_HOP}\nX-MS-Exchange-Organization-SCL: -1\n\nPlease pay.\n".encode()
    clean = headers(tmp_path, eml)
    d = headers(tmp_path, planted.replace(b"\n", b"\n\n"))
    assert seen(d) == seen(clean)
    assert any("were read as the body" in n for n in d["notes"])


@pytest.mark.parametrize(
    "text,subject",
    [
        (f"{RECEIVED}\n\nSubject: hello\nMessage-ID: <x@y>\n", "hello"),
        (f"{RECEIVED}\n\nSubject:\nhello there\nMessage-ID: <x@y>\n", "hello there"),
        (f"{RECEIVED}\nSubject:\n\nhello there\nMessage-ID: <x@y>\n", "hello there"),
        (f"{RECEIVED}\n\nSubject:\n\nhello there\n\nMessage-ID: <x@y>\n", "hello there"),
        (f"{RECEIVED}\n\nSubject:\nFwd: Shipment delayed\nMessage-ID: <x@y>\n", None),
    ],
    ids=["blank", "blank-then-broken-fold", "blank-inside-fold", "double-spaced", "fwd"],
)
def test_blank_lines_in_pasted_header_text_are_removed(tmp_path, text, subject):
    d = headers(tmp_path, text.encode())
    assert d["subject"] == (subject or "Fwd: Shipment delayed")
    assert d["message_id"] == "<x@y>" and len(d["hops"]) == 1
    assert any("blank line" in n or "double-spaced" in n for n in d["notes"])


def test_a_blank_line_inside_a_folded_header_is_removed(tmp_path, synth_emls):
    """A paste with a blank line before a fold's next line (`` smtp.mailfrom=...``) lost every
    header after it, silently: the fold goes on, with a note, wherever the blank line falls
    among the servers' headers."""
    for eml in synth_emls[:4]:
        section = _header_section(eml.read_bytes()).replace(b"\r\n", b"\n")
        lines = section.rstrip(b"\n").split(b"\n")
        clean = headers(tmp_path, section)
        folds = [i for i, ln in enumerate(lines) if ln[:1] in (b" ", b"\t")]
        own = next(i for i, ln in enumerate(lines) if ln.lower().startswith((b"from:", b"to:")))
        cut = [i for i in folds if i < own][:3]
        assert cut, eml.name
        for i in cut:
            pasted = b"\n".join([*lines[:i], b"", *lines[i:]]) + b"\n"
            d = headers(tmp_path, pasted)
            assert seen(d) == seen(clean), (eml.name, i)
            assert f"removed a blank line inside the header block (line {i + 1})" in d["notes"]
