"""Antispam and organisation header fields: an empty field says so, every AuthAs value has
its meaning (FORMATS.md J.1, J.2)."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import CORPUS, LOGANALYZER

from loganalyzer.headers import analyze_headers
from loganalyzer.headers.antispam import NO_VALUE, decode, meaning
from loganalyzer.headers.auth import parse_authentication_results

SAMPLE = CORPUS / "headers" / "mha_ForefrontAntispam-test_value.txt"
SFTY_919 = (
    "Domain impersonation: the sending domain tries to impersonate a protected domain; a safety"
    " tip is added."
)
SRV_BULK = (
    "The message was identified as bulk email by spam filtering and the BCL threshold; with"
    " MarkAsSpamBulkMail on it is stamped SCL 6."
)
AUTHAS = "X-MS-Exchange-Organization-AuthAs"


def test_no_value_is_said_as_such():
    assert NO_VALUE == "No value: the field is present but empty."


def test_empty_fields_of_a_real_header_have_no_value_meaning():
    fields = analyze_headers(SAMPLE.read_bytes()).to_dict()["antispam"]
    meanings = {a["field"]: a["meaning"] for a in fields if a["value"] == ""}
    assert meanings == dict.fromkeys(("SRV", "SFTY", "SFS", "SFP"), NO_VALUE)


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("SFTY", "", NO_VALUE),
        ("SRV", "", NO_VALUE),
        ("SCL", "", NO_VALUE),
        ("BCL", "", NO_VALUE),
        ("X-CustomSpam", "", NO_VALUE),
        ("NOSUCHFIELD", "", NO_VALUE),
        ("SFTY", "9.19", SFTY_919),
        ("SRV", "BULK", SRV_BULK),
        (
            "SFTY",
            "9.99",
            "Phishing safety tip: with a value (9.19, 9.20, 9.25), the message was identified"
            " as phishing and marked with that safety tip (see the SFTY:... values).",
        ),
    ],
)
def test_a_value_gets_its_own_meaning_and_no_value_gets_none(field, value, expected):
    assert meaning(field, value) == expected


@pytest.mark.parametrize(
    "value,expected",
    [
        (
            "Anonymous",
            "The sender did not authenticate, so Exchange treats it as anonymous: usually a"
            " server on the Internet, or an unauthenticated relay.",
        ),
        (
            "Internal",
            "The sender authenticated as part of the organisation: an Exchange server of the"
            " organisation, an authenticated user, a Receive connector set to Externally"
            " Secured, or Exchange Online sending to the on-premises servers of a hybrid"
            " organisation.",
        ),
        (
            "Partner",
            "The sending server authenticated as a partner organisation (domain security,"
            " mutual TLS).",
        ),
        (
            "External",
            "The sender authenticated, but neither as part of the organisation nor as a"
            " partner (believed; no source describes this value).",
        ),
        ("", NO_VALUE),
        (
            "Unheard",
            "How Exchange classified the sender when the message entered the organisation:"
            " Anonymous, Internal, Partner or External. Exchange removes this header from mail"
            " arriving from outside (the header firewall) and stamps its own.",
        ),
    ],
)
def test_every_authas_value_has_its_meaning(value, expected):
    [field] = decode([(AUTHAS, value)])
    assert (field.field, field.value, field.meaning) == ("AuthAs", value, expected)


def _installed(*args: str) -> subprocess.CompletedProcess:
    exe = LOGANALYZER
    assert exe, "the loganalyzer command is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_installed_headers_command_says_no_value_and_internal(tmp_path):
    eml = tmp_path / "m.eml"
    eml.write_bytes(
        SAMPLE.read_bytes().rstrip(b"\r\n")
        + f"\r\n{AUTHAS}: Internal\r\nSubject: x\r\n\r\nbody\r\n".encode()
    )
    done = _installed("headers", str(eml), "--json")
    assert done.returncode == 0, done.stderr
    fields = {a["field"]: a for a in json.loads(done.stdout)["antispam"]}
    assert fields["SFTY"]["meaning"] == fields["SRV"]["meaning"] == NO_VALUE
    assert fields["AuthAs"]["meaning"].startswith("The sender authenticated as part of the")
    text = _installed("headers", str(eml)).stdout
    assert "identified as phishing" not in text and "No source was found" not in text


@pytest.mark.parametrize(
    "clause,expected",
    [
        ("spf=", NO_VALUE),
        (
            "dkim=neutral header.d=contoso.com",
            "The message was signed, but the signature or its hashes could not be processed"
            " well enough to say pass or fail (for example a syntax error).",
        ),
        (
            "dkim=policy header.d=contoso.com",
            "The signature verified, but the receiver's local policy does not accept it (for"
            " example it covers too little of the message).",
        ),
        (
            "dkim=temperror header.d=contoso.com",
            "A temporary error (for example a DNS lookup of the key) prevented the DKIM check;"
            " a later check might succeed.",
        ),
        (
            "dkim=permerror header.d=contoso.com",
            "A permanent error (for example a missing or malformed key record) prevented the"
            " DKIM check.",
        ),
        (
            "dmarc=temperror header.from=contoso.com",
            "A temporary error (for example a DNS lookup) prevented the DMARC check; a later"
            " check might succeed.",
        ),
        (
            "dmarc=permerror header.from=contoso.com",
            "A permanent error (for example a malformed DMARC record) prevented the DMARC check.",
        ),
    ],
)
def test_every_authentication_result_has_its_meaning(clause, expected):
    [result] = parse_authentication_results(clause)
    assert result.meaning == expected
