"""How codes are looked up and explained (the loading rules, not the tables' rows): a detail
code no table lists, the class of an enhanced code deciding its outcome, unknown codes and
families named in the error. Values written from RFC 3463 (enhanced status codes) and RFC 5321
(reply codes)."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import LOGANALYZER

import eventcodes
from eventcodes import UnknownCode, explain_status, lookup


def _codes(text: str) -> list[tuple]:
    return [
        (c.family, c.code, c.name, c.outcome, c.is_failure, c.confidence)
        for c in explain_status(text)
    ]


def test_a_detail_code_no_table_lists_falls_back_to_its_subject():
    # RFC 3463: X.1.0 "Other address status", X.7.0 "Other or undefined security status"
    assert _codes("550 5.1.250 no such thing") == [
        ("enhanced-iana", "5.1.250",
         "Other address status (permanent failure) (unlisted detail code)",
         "failed", True, "unverified"),
        ("smtp-reply", "550", "Mailbox unavailable", "failed", True, "solid"),
    ]  # fmt: skip
    assert _codes("450 4.7.99 try later") == [
        ("enhanced-iana", "4.7.99",
         "Other or undefined security status (temporary failure) (unlisted detail code)",
         "deferred", True, "unverified"),
        ("smtp-reply", "450", "Mailbox unavailable", "deferred", True, "solid"),
    ]  # fmt: skip
    # the class decides: a 2.x.x code is a success whatever the subject entry says
    assert _codes("2.1.250") == [
        ("enhanced-iana", "2.1.250", "Other address status (success) (unlisted detail code)",
         "delivered", False, "unverified"),
    ]  # fmt: skip
    assert _codes("5.9.250") == []  # no subject 9 in RFC 3463


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("2.1.1", ("2.1.1", "delivered", False)),  # from the X.1.1 entry, class 2
        ("4.1.1", ("4.1.1", "deferred", True)),
        ("2.1.5", ("2.1.5", "delivered", False)),
        ("#4.4.7", ("4.4.7", "deferred", True)),  # the '#' Exchange writes before a code
        ("X.1.0", ("X.1.0", "info", False)),  # class-less: a neutral detail, no outcome of its own
    ],
)
def test_the_class_of_an_enhanced_code_decides_its_outcome(code, expected):
    c = lookup(code, "enhanced-iana")
    assert (c.code, c.outcome, c.is_failure) == expected


def test_unknown_codes_and_families_are_named():
    with pytest.raises(UnknownCode) as err:
        lookup("999999")
    assert (str(err.value), err.value.code, err.value.family) == (
        "unknown code '999999'",
        "999999",
        None,
    )
    with pytest.raises(UnknownCode) as err:
        lookup("zzz", "smtp-reply")
    assert (str(err.value), err.value.code, err.value.family) == (
        "unknown code 'zzz' in family 'smtp-reply'",
        "zzz",
        "smtp-reply",
    )
    known = (
        "exchange-event, exchange2003, exchange-ims, exchange-source, enhanced-exchange, "
        "enhanced-iana, exchange-tag, "
        "smtp-reply, transport-eventlog, exo-status, antispam-forefront, scl, bcl, pcl, "
        "compauth-reason, auth-result, exchange-org-header, agent"
    )
    for call in (lambda: lookup("550", "smtp"), lambda: eventcodes.entries("smtp")):
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == f"unknown family 'smtp'; known: {known}"


def test_explain_within_one_family():
    # 5.1.1 is in Exchange's table first; asked for IANA's, IANA's entry comes back
    [iana] = eventcodes.explain("5.1.1", "enhanced-iana")
    assert (iana.family, iana.name) == ("enhanced-iana", "Bad destination mailbox address")
    assert eventcodes.explain("5.1.1")[0].family == "enhanced-exchange"
    # an event name is no SMTP reply, and its text holds no code
    with pytest.raises(eventcodes.UnknownCode, match="'DELIVER' in family 'smtp-reply'"):
        eventcodes.explain("DELIVER", "smtp-reply")


#: The Internet Mail Service diagnostics of Exchange 5.5-2003 NDRs, as FORMATS.md F.1 lists
#: them (a bounce-parser library's table), with the outcome their NDR means.
IMS = {
    "000C05A6": "Unknown recipient",
    "000C0595": "Ambiguous recipient",
    "00010256": "Too many recipients",
    "000D06B5": "No proxy for recipient",
    "00120270": "Too many hops",
    "00050311": "Conversion to Internet format failed",
    "000502CC": "Conversion to Internet format failed",
    "000B0981": "Remote server does not support AUTH",
}


def test_ims_diagnostics_of_old_ndrs_are_known():
    for code, name in IMS.items():
        entry = lookup(code.lower())
        assert (entry.family, entry.name, entry.outcome) == ("exchange-ims", name, "failed")
    line = "MSEXCH:IMS:Contoso:Site:SERVER 0 (000C05A6) Unknown Recipient"
    assert [c.code for c in explain_status(line)] == ["000C05A6"]
    # eight hex digits in brackets elsewhere are not a diagnostic
    assert explain_status("queued as (000C05A6) on 550 hold") == [lookup("550", "smtp-reply")]
    assert len(eventcodes.entries("exchange-ims")) == 11


def test_codes_command_explains_an_ims_diagnostic_line():
    line = "MSEXCH:IMS:Contoso:Site:SERVER 0 (000c05a6) Unknown Recipient"
    done = subprocess.run(
        [LOGANALYZER, "codes", line, "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    assert (entry["code"], entry["name"], entry["outcome"]) == (
        "000C05A6",
        "Unknown recipient",
        "failed",
    )
    assert "Internet Mail Service" in entry["meaning"]


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        # The final NDR of an expired message: 4.4.7's own entry is a delay (RFC 3463 class 4),
        # the reply code 550 makes the reply permanent (RFC 5321 4.2.1).
        ("550 4.4.7 QUEUE.Expired; message expired", "as a whole a permanent failure"),
        ("235 2.7.0 Authentication successful", "as a whole a success"),
    ],
)
def test_a_reply_whose_codes_disagree_says_what_its_reply_code_makes_it(reply, said):
    done = subprocess.run([LOGANALYZER, "codes", reply], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{said} (its reply code {reply[:3]} decides)" in " ".join(done.stdout.split())
    agreeing = subprocess.run(
        [LOGANALYZER, "codes", "550 5.1.1 RESOLVER.ADR.RecipNotFound"],
        capture_output=True,
        text=True,
    )
    assert "as a whole" not in agreeing.stdout


def test_json_says_what_a_reply_whose_codes_disagree_is_as_a_whole():
    reply = "550 4.4.7 QUEUE.Expired; message expired"
    done = subprocess.run(
        [LOGANALYZER, "codes", reply, "5.1.1", "550 5.1.1 not found", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    whole = {"reply": reply, "reply_code": "550", "outcome": "permanent failure"}
    assert [(r["code"], r.get("as_a_whole")) for r in rows] == [
        ("4.4.7", whole),  # Exchange's meaning, then the standard one
        ("4.4.7", whole),
        ("QUEUE.Expired", whole),
        ("550", whole),
        ("5.1.1", None),  # a code alone, and a reply whose codes agree: each row says it
        ("5.1.1", None),
        ("5.1.1", None),
        ("5.1.1", None),
        ("550", None),
    ]
    # the library call is what the command prints
    explained = [eventcodes.explain_reply(t) for t in (reply, "5.1.1", "550 5.1.1 not found")]
    assert [row for x in explained for row in x.rows()] == rows


def test_an_iis_reply_written_with_plus_signs_keeps_its_reply_code():
    # IIS SMTP logs write a reply's spaces as "+" (FORMATS.md, the IIS section).
    found = [(c.family, c.code) for c in explain_status("550+5.7.1+Unable+to+relay")]
    assert found == [("enhanced-exchange", "5.7.1"), ("smtp-reply", "550")]
    assert eventcodes.reply_class("550+5.7.1+Unable+to+relay") == ("550", "permanent failure")


@pytest.mark.parametrize(
    ("family", "code"),
    [("enhanced-iana", "5.1.1"), ("enhanced-exchange", "5.1.1"), ("smtp-reply", "550")],
)
def test_a_whole_reply_is_explained_in_the_family_asked(family, code):
    # the enhanced code was looked up in the first family that knows it, then filtered out
    for reply in ("550 5.1.1 unknown user", "550+5.1.1+unknown+user"):
        done = subprocess.run([LOGANALYZER, "codes", reply, "--family", family, "--json"],
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert [(e["family"], e["code"]) for e in json.loads(done.stdout)] == [(family, code)]


def test_a_reply_only_auth_gives_is_explained_before_a_shared_enhanced_code():
    # Real (tests/corpus/smtp-protocol): Exchange answers a wrong password "535 5.7.3
    # Authentication unsuccessful"; 5.7.3 came first with Exchange's X-EXPS meaning.
    done = subprocess.run([LOGANALYZER, "codes", "535 5.7.3 Authentication unsuccessful",
                           "--json"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    codes = [(c["family"], c["code"]) for c in json.loads(done.stdout)]
    assert codes[0] == ("smtp-reply", "535") and ("enhanced-exchange", "5.7.3") in codes
    assert [c for c in codes if c[1] == "550"] == []
    plain = json.loads(subprocess.run([LOGANALYZER, "codes", "550 5.7.3 denied", "--json"],
                                      capture_output=True, text=True).stdout)  # fmt: skip
    assert plain[0]["code"] == "5.7.3"  # other replies keep the enhanced code first
