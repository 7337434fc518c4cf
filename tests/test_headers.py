"""Header analysis on real header blocks (tests/corpus/headers), a built Exchange Online block
(tests/headers/built-exo-inbound.eml, made from FORMATS.md J and K) and hand-made edge cases."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
from datetime import UTC, datetime

import pytest
from conftest import CORPUS, LOGANALYZER, ROOT

import eventcodes
from loganalyzer import analyze_headers
from loganalyzer.headers.antispam import UNDOCUMENTED, split_pairs
from loganalyzer.headers.auth import compauth_reason, parse_authentication_results
from loganalyzer.headers.received import chain, parse_date, parse_received

HEADERS = CORPUS / "headers"
BUILT = ROOT / "tests" / "headers" / "built-exo-inbound.eml"
FAMILIES = ("antispam-forefront", "scl", "bcl", "pcl", "compauth-reason", "auth-result")


def read(name: str) -> bytes:
    return (HEADERS / name).read_bytes()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- Received grammar -------------------------------------------------------------------------

RECEIVED = [
    (  # EOP front door: "with Microsoft SMTP Server (...)" is one protocol; via is a component
        "from mail-ua0-f171.google.com (209.85.217.171) by "
        "BY2NAM01FT028.mail.protection.outlook.com (10.152.69.201) with Microsoft SMTP Server "
        "(version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA_P384) id 15.20.776.10 via "
        "Frontend Transport; Mon, 21 May 2018 16:08:54 +0000",
        {
            "from_name": "mail-ua0-f171.google.com",
            "from_ip": "209.85.217.171",
            "by": "BY2NAM01FT028.mail.protection.outlook.com",
            "by_ip": "10.152.69.201",
            "protocol": "Microsoft SMTP Server",
            "tls": {"version": "TLS1_2", "cipher": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA_P384"},
            "id": "15.20.776.10",
            "via": "Frontend Transport",
            "date_time": "2018-05-21T16:08:54",
        },
    ),
    (  # MAPI submission: link-local IPv6 with a zone id
        "from SLXP216MB0381.KORP216.PROD.OUTLOOK.COM ([fe80::10d2:b426:34cf:d5d0]) by "
        "SLXP216MB0381.KORP216.PROD.OUTLOOK.COM ([fe80::10d2:b426:34cf:d5d0%14]) with mapi id "
        "15.20.0797.011; Wed, 23 May 2018 08:15:49 +0000",
        {
            "from_ip": "fe80::10d2:b426:34cf:d5d0",
            "by_ip": "fe80::10d2:b426:34cf:d5d0%14",
            "protocol": "mapi",
            "tls": None,
            "id": "15.20.0797.011",
        },
    ),
    (  # to the mailbox: with HTTPS via <server>, IPv6 without brackets
        "from BY2NAM01HT049.eop-nam01.prod.protection.outlook.com (2a01:111:e400:5a6b::50) by "
        "BY2PR16MB0487.namprd16.prod.outlook.com with HTTPS via "
        "BY2PR1001CA0082.NAMPRD10.PROD.OUTLOOK.COM; Mon, 21 May 2018 16:08:55 +0000",
        {
            "from_ip": "2a01:111:e400:5a6b::50",
            "protocol": "HTTPS",
            "via": "BY2PR1001CA0082.NAMPRD10.PROD.OUTLOOK.COM",
            "id": None,
        },
    ),
    (  # Exchange 2013 on premises: (TLS) without details; +1000 zone
        "from ex1.example.com (192.0.2.21) by ex2.example.com (192.0.2.22) with Microsoft SMTP "
        "Server (TLS) id 15.0.1104.5 via Frontend Transport; Fri, 2 Sep 2016 05:52:53 +1000",
        {
            "tls": {"version": None, "cipher": None},
            "id": "15.0.1104.5",
            "date_time": "2016-09-01T19:52:53",
        },
    ),
    (  # IIS SMTP: text between by and with; bracketed address literal
        "from mx.example.net ([198.51.100.1]) by COL004-MC5F8.hotmail.com over TLS secured "
        "channel with Microsoft SMTPSVC(7.5.7601.23143); Thu, 29 Sep 2016 03:32:42 -0700",
        {
            "from_ip": "198.51.100.1",
            "by": "COL004-MC5F8.hotmail.com",
            "protocol": "Microsoft SMTPSVC(7.5.7601.23143)",
            "tls": {"version": None, "cipher": None},
            "date_time": "2016-09-29T10:32:42",
        },
    ),
    (  # Gmail: TLS details in a comment after the id; PDT zone comment
        "from [10.233.168.165] ([186.2.138.141]) by smtp.gmail.com with ESMTPSA id "
        "72-v6sm5966316vko.20.2018.05.21.09.08.52 (version=TLS1_2 "
        "cipher=ECDHE-RSA-AES128-GCM-SHA256 bits=128/128); Mon, 21 May 2018 09:08:53 -0700 (PDT)",
        {
            "from_name": "[10.233.168.165]",
            "from_ip": "186.2.138.141",
            "protocol": "ESMTPSA",
            "tls": {"version": "TLS1_2", "cipher": "ECDHE-RSA-AES128-GCM-SHA256"},
            "date_time": "2018-05-21T16:08:53",
        },
    ),
    (  # SendGrid: no ";" before an ISO-style date with nanoseconds
        "by filter0652p1las1.sendgrid.net with SMTP id filter0652p1las1-5089-5ADBF958-25 "
        "2018-04-22 02:54:17.028704749 +0000 UTC",
        {"from_name": None, "protocol": "SMTP", "date_time": "2018-04-22T02:54:17.028704"},
    ),
    (  # Postfix with STARTTLS details and a for clause
        "from mail.example.org (mail.example.org [203.0.113.9]) (using TLSv1.3 with cipher "
        "TLS_AES_256_GCM_SHA384 (256/256 bits)) by mx.example.com (Postfix) with ESMTPS id "
        "4VdQ2k1Zx3z9sQ for <bob@example.com>; Tue, 14 May 2024 11:12:01 +0200 (CEST)",
        {
            "from_ip": "203.0.113.9",
            "protocol": "ESMTPS",
            "tls": {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"},
            "for": "bob@example.com",
        },
    ),
    ("(qmail 12345 invoked by uid 89); 14 May 2024 09:00:00 -0000", {"by": None}),
]


@pytest.mark.parametrize("value,expected", RECEIVED)
def test_received_clauses(value, expected):
    hop = parse_received(value).to_dict()
    for key, want in expected.items():
        got = hop[key]
        if key == "date_time":
            got = got.removesuffix("Z")
            want = datetime.fromisoformat(want).isoformat(timespec="milliseconds")
        assert got == want, (key, hop)


@pytest.mark.parametrize(
    "text,iso,assumed",
    [
        ("Sun, 22 Apr 2018 02:54:16.987 +0000 (UTC)", "2018-04-22T02:54:16.987", False),
        ("Thu, 22 Feb 2011 23:34:45 +0900 (JST)", "2011-02-22T14:34:45", False),
        ("1 Mar 99 10:00:00 EST", "1999-03-01T15:00:00", False),
        ("Mon, 2 Mar 2026 19:50:33", "2026-03-02T19:50:33", True),
        ("23 May 2018 08:15:57.9535 (UTC)", "2018-05-23T08:15:57.953500", False),
        ("2024-05-14T09:12:03Z", "2024-05-14T09:12:03", False),
        ("no date here", None, False),
    ],
)
def test_dates(text, iso, assumed):
    when, was_assumed = parse_date(text)
    assert (when.replace(tzinfo=None).isoformat() if when else None) == (
        datetime.fromisoformat(iso).isoformat() if iso else None
    )
    assert was_assumed == assumed


def test_negative_delay_is_clock_skew_but_not_rounding():
    stamps = [
        "from c by b with ESMTP; Tue, 14 May 2024 09:00:05 +0000",  # newest first
        "from d by c with ESMTP; Tue, 14 May 2024 09:00:10 +0000",
        "from e by d with ESMTP; Tue, 14 May 2024 09:00:00.700 +0000",
    ]
    hops = chain(stamps)
    assert [h.delay_s for h in hops] == [None, 9.3, -5.0]
    assert [h.clock_skew for h in hops] == [False, False, True]
    assert hops[2].since_first_s == 4.3
    github = (HEADERS / "mha_Received-test_githubHeaders.txt").read_text()
    eop = analyze_headers(github).hops[2]  # whole second after SendGrid's fraction: rounding
    assert eop.delay_s == -0.029 and not eop.clock_skew


# --- real samples -----------------------------------------------------------------------------


def test_exchange_online_ndr_with_antispam_headers():
    r = analyze_headers(read("sisimai_lhost-office365-05.txt"))
    d = r.to_dict()
    assert (
        d["message_id"]
        == "<453eb79f-2ae3-4903-b2b2-481bea8cf017@SG2APC01HT040.mail.protection.outlook.com>"
    )
    assert d["network_message_id"] == "ea948fea-629f-4712-5bd5-08d5c08569b6"
    assert d["subject"] == "Undeliverable: Nyaan"
    assert [h["by"] for h in d["hops"]] == [
        "HE1EUR01FT059.mail.protection.outlook.com",
        "HE1EUR01HT124.eop-EUR01.prod.protection.outlook.com",
        "SLXP216MB0381.KORP216.PROD.OUTLOOK.COM",
    ]
    assert [h["delay_s"] for h in d["hops"]] == [None, 0.0, 2.0]
    assert d["hops"][2]["protocol"] == "HTTPS" and d["hops"][0]["via"] == "Frontend Transport"
    # EOP's authserv-id sits after the spf clause
    spf, dkim, dmarc = (d["auth"][m] for m in ("spf", "dkim", "dmarc"))
    assert (spf["result"], spf["comment"]) == ("pass", "sender IP is 104.47.126.200")
    assert spf["properties"] == {"smtp.helo": "APC01-PU1-obe.outbound.protection.outlook.com"}
    assert spf["authserv_id"] == "outlook.com"
    assert (dkim["result"], dkim["comment"]) == ("none", "message not signed")
    assert dmarc["properties"] == {"action": "none", "header.from": "outlook.com"}
    assert d["auth"]["arc"] is None and d["auth"]["compauth"] is None
    fields = {(a["header"], a["field"]): a for a in d["antispam"]}
    assert fields["X-Forefront-Antispam-Report-Untrusted", "SFV"]["value"] == "NSPM"
    assert fields["X-Forefront-Antispam-Report-Untrusted", "DIR"]["value"] == "OUT"
    assert fields["X-Forefront-Antispam-Report", "EFV"]["value"] == "NLI"
    assert fields["X-Microsoft-Antispam", "BCL"]["meaning"].startswith("The message is not from")
    assert fields["X-MS-Exchange-Organization-AuthAs", "AuthAs"]["value"] == "Anonymous"
    # the bounce: DSN fields, explained; the original from the message/rfc822 part
    assert d["is_bounce"] and d["reporting_mta"] == "SG2APC01HT040.mail.protection.outlook.com"
    [b] = d["bounce"]
    assert (b["recipient"], b["status"], b["diagnostic"]) == (
        "kijitora@example.jp",
        "5.1.8",
        "501 5.1.8 Sender address rejected",
    )
    # nijo.example.jp's reply, quoted: its standard meaning (RFC 3463's X.1.8)
    assert (
        b["meaning"] == eventcodes.standard(eventcodes.explain_status(b["diagnostic"])[0]).meaning
    )
    assert b["remote_mta"] == "nijo.example.jp"
    original = d["original"]
    assert original["message_id"] == (
        "<SLXP216MB0381016D56DE89DBC2139287A96B0@SLXP216MB0381.KORP216.PROD.OUTLOOK.COM>"
    )
    assert [h["protocol"] for h in original["hops"]] == ["mapi", *["Microsoft SMTP Server"] * 2]
    assert d["trace"] is None


def test_exchange_2007_ndr():
    d = analyze_headers(read("sisimai_lhost-exchange2007-01.txt")).to_dict()
    [b] = d["bounce"]
    assert (b["recipient"], b["status"]) == ("mikeneko@example.co.jp", "5.1.1")
    assert b["diagnostic"] == "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
    assert [c["code"] for c in b["codes"]] == ["5.1.1", "550"]
    assert "RecipNotFound" in b["meaning"] or "does not exist" in b["meaning"]
    assert d["original"]["hops"][0]["protocol"] == "Microsoft SMTP Server"
    assert d["original"]["hops"][0]["id"] == "8.2.222.2"
    assert d["original"]["subject"] == "Nyaan"


def test_ndr_text_when_there_is_no_delivery_status_part():
    text = read("sisimai_lhost-exchange2007-01.txt").decode()
    start = text.index("--0000ffff-0000-0000-0000-0000\nContent-Type: message/delivery-status")
    end = text.index("--0000ffff-0000-0000-0000-0000\nContent-Type: message/rfc822")
    d = analyze_headers(text[:start] + text[end:]).to_dict()
    [b] = d["bounce"]
    assert (b["recipient"], b["status"], b["source"]) == (
        "mikeneko@example.co.jp",
        "5.1.1",
        "ndr-text",
    )
    assert b["diagnostic"] == "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
    assert d["reporting_mta"] == "mta4.example.org"  # the text part's (sanitised) name


def test_exchange_2003_ndr_text_lists_each_recipient_with_its_status():
    d = analyze_headers((ROOT / "tests" / "headers" / "built-exchange2003-ndr.eml").read_bytes())
    assert d.is_bounce and d.to_dict()["reporting_mta"] == "mail.example.com"
    got = [
        (b["recipient"], b["status"], b["diagnostic"], b["source"]) for b in d.to_dict()["bounce"]
    ]
    assert got == [
        ("jdoe@example.com", "5.1.1", "<mail.example.com #5.1.1>", "ndr-text"),
        (
            "mroe@example.org",
            "5.7.1",
            "550 5.7.1 <mroe@example.org>... Relaying denied",
            "ndr-text",
        ),
    ]
    assert [[c["code"] for c in b["codes"]] for b in d.to_dict()["bounce"]] == [
        ["5.1.1"],
        ["5.7.1", "550"],
    ]


def test_exchange_55_ims_ndr_lists_its_unknown_recipients():
    d = analyze_headers((ROOT / "tests" / "headers" / "built-exchange55-ims-ndr.eml").read_bytes())
    ims = "MSEXCH:IMS:Contoso:Site:SERVER 0 (000C05A6) Unknown Recipient"
    assert d.is_bounce
    assert [(b.recipient, b.status, b.diagnostic) for b in d.bounce] == [
        ("jdoe@example.com", None, ims),
        ("bsmith@example.com", None, ims),
    ]
    # the diagnostic names no status code: its hex code says what happened
    assert [[(c.code, c.name) for c in b.codes] for b in d.bounce] == [
        [("000C05A6", "Unknown recipient")]
    ] * 2


def test_an_on_date_line_without_a_diagnostic_is_no_recipient():
    text = (
        "Subject: Undeliverable: notes\nFrom: postmaster@example.com\n\n"
        "Notes written on 3/14/2004 10:05 AM\n    by the team, for the team\n"
    )
    d = analyze_headers(text)
    assert d.is_bounce and d.bounce == []


def test_old_ndr_through_the_installed_headers_command():
    import subprocess

    exe = LOGANALYZER
    eml = ROOT / "tests" / "headers" / "built-exchange2003-ndr.eml"
    done = subprocess.run(
        [exe, "headers", str(eml), "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)
    assert d["is_bounce"] is True
    assert [(b["recipient"], b["status"]) for b in d["bounce"]] == [
        ("jdoe@example.com", "5.1.1"),
        ("mroe@example.org", "5.7.1"),
    ]
    plain = subprocess.run([exe, "headers", str(eml)], capture_output=True, text=True, timeout=120)
    assert "jdoe@example.com" in plain.stdout and "5.1.1" in plain.stdout
    # headers without a Received line: said in a line, not an empty table of hops
    bare = CORPUS / "headers" / "mha_ForefrontAntispam-test_value.txt"
    plain = subprocess.run([exe, "headers", str(bare)], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and "Hops: no Received header." in plain.stdout
    assert "Hops, oldest first" not in plain.stdout


def test_bounce_received_through_eop_with_broken_folding():
    r = analyze_headers(read("sisimai_lhost-postfix-57.txt"))
    d = r.to_dict()
    # "X-Microsoft-Antispam:" with its value on the next line, unindented
    bcl = [a for a in d["antispam"] if a["header"] == "X-Microsoft-Antispam"]
    assert [(a["field"], a["value"]) for a in bcl][:2] == [("BCL", "0"), ("PCL", "0")]
    assert any("broken fold after X-Microsoft-Antispam" in n for n in d["notes"])
    assert ("PCL", "2") in {(a["field"], a["value"]) for a in d["antispam"]}
    assert d["auth"]["spf"]["result"] == "none" and d["auth"]["dmarc"]["result"] == "none"
    assert d["hops"][0]["by"] == "rokujo.cr.nyaan.jp" and d["hops"][0]["from_name"] is None
    assert d["hops"][1]["delay_s"] == 1.0  # JST (+0900) and +0000 normalised to UTC
    [b] = d["bounce"]
    assert (b["recipient"], b["status"]) == ("kijitora@cr.nyaan.jp", "5.2.1")
    assert d["original"]["message_id"] == "<44kWHZ2S3Qz1yxHC@rokujo.cr.nyaan.jp>"
    assert d["original"]["hops"][0]["id"] == "44kWHZ2S3Qz1yxHC"  # its folds were broken too


FOLDED_BEFORE_THE_PARENTHESIS = (
    "Received: from SN6PR02MB4112.eop-nam02.prod.protection.outlook.com\n"
    "{indent}(2603:1096:100:41::31) by BYAPR02MB5590.namprd02.prod.outlook.com with HTTPS\n"
    "{indent}via SN6PR2101CA0014.NAMPRD21.PROD.OUTLOOK.COM; Wed, 17 Apr 2019 05:44:55 +0000\n"
    "Subject: Quarterly report\n"
    "From: alice@contoso.com\n"
)


@pytest.mark.parametrize("indent", ["", "  ", "\t"], ids=["unindented", "spaces", "tab"])
def test_received_folded_before_the_parenthesis_keeps_every_clause(indent):
    d = analyze_headers(FOLDED_BEFORE_THE_PARENTHESIS.format(indent=indent)).to_dict()
    [hop] = d["hops"]
    assert {k: hop[k] for k in ("from_name", "from_ip", "by", "protocol", "via", "date_time")} == {
        "from_name": "SN6PR02MB4112.eop-nam02.prod.protection.outlook.com",
        "from_ip": "2603:1096:100:41::31",
        "by": "BYAPR02MB5590.namprd02.prod.outlook.com",
        "protocol": "HTTPS",
        "via": "SN6PR2101CA0014.NAMPRD21.PROD.OUTLOOK.COM",
        "date_time": "2019-04-17T05:44:55.000Z",
    }
    assert d["subject"] == "Quarterly report"
    if not indent:
        assert d["notes"] == ["joined a line without folding whitespace to Received (2 times)"]


def test_microsoft_received_and_antispam_test_values():
    prop1 = analyze_headers(read("mha_GetHeadersEWS-test_prop1.txt")).to_dict()
    assert [h["by"] for h in prop1["hops"]] == [
        "smtp.gmail.com",
        "mail-ua0-f171.google.com",
        "BY2NAM01FT028.mail.protection.outlook.com",
        "BY2NAM01HT049.eop-nam01.prod.protection.outlook.com",
        "BY2PR16MB0487.namprd16.prod.outlook.com",
    ]
    assert [h["delay_s"] for h in prop1["hops"]] == [None, 1.0, 0.0, 0.0, 1.0]
    github = analyze_headers(read("mha_Received-test_githubHeaders.txt")).to_dict()
    assert github["hops"][0]["date_time"] == "2018-04-22T02:54:16.987Z"
    assert github["hops"][1]["by"] == "filter0652p1las1.sendgrid.net"
    ffas = analyze_headers(read("mha_ForefrontAntispam-test_value.txt")).to_dict()["antispam"]
    values = {a["field"]: a["value"] for a in ffas}
    assert values == {
        "CIP": "208.75.123.162",
        "CTRY": "US",
        "LANG": "en",
        "SCL": "0",
        "SRV": "",
        "IPV": "NLI",
        "SFV": "NSPM",
        "H": "ccm27.constantcontact.com",
        "PTR": "ccm27.constantcontact.com",
        "CAT": "NONE",
        "SFTY": "",
        "SFS": "",
        "DIR": "INB",
        "SFP": "",
    }
    meaning = {a["field"]: a["meaning"] for a in ffas}
    assert meaning["SFV"] == eventcodes.lookup("SFV:NSPM", "antispam-forefront").meaning
    assert meaning["SCL"] == eventcodes.lookup("SCL:0", "scl").meaning
    assert meaning["IPV"] == eventcodes.lookup("IPV:NLI").meaning
    assert UNDOCUMENTED not in meaning.values()


def test_built_exchange_online_inbound_block():
    """tests/headers/built-exo-inbound.eml: built from FORMATS.md J/K, see its README."""
    d = analyze_headers(BUILT.read_bytes()).to_dict()
    assert d["message_id"] == "<20240514091200.4VdQ2k1Zx3z9sQ@mail.fabrikam.example>"
    assert d["network_message_id"] == "4c0e7d1a-2b3f-4e5a-9c8d-08dc73f1a2b4"
    assert d["subject"] == "Quartalsbericht für Mai"
    hops = d["hops"]
    assert [h["date_time"][11:19] for h in hops] == [
        "09:12:01",
        "09:12:03",
        "09:12:04",
        "09:12:05",
        "09:12:06",
    ]
    assert hops[1]["tls"] == {"version": "TLS1_3", "cipher": "TLS_AES_256_GCM_SHA384"}
    assert hops[1]["from_ip"] == "203.0.113.25" and hops[4]["protocol"] == "HTTPS"
    assert not any(h["clock_skew"] for h in hops)
    auth = d["auth"]
    assert {m: a["result"] for m, a in auth.items()} == {
        "spf": "pass",
        "dkim": "pass",
        "dmarc": "pass",
        "arc": "none",
        "compauth": "pass",
    }
    assert auth["compauth"]["properties"] == {"reason": "100"}
    assert auth["compauth"]["notes"] == [f"reason=100: {compauth_reason('100')}"]
    assert auth["spf"]["authserv_id"] is None  # absent, as in tenant mail
    fields = {(a["header"], a["field"]): a for a in d["antispam"]}
    assert fields["X-MS-Exchange-Organization-SCL", "SCL"]["meaning"] == (
        eventcodes.lookup("SCL:1", "scl").meaning
    )
    assert fields["X-Forefront-Antispam-Report", "CTRY"]["value"] == "NL"
    assert fields["X-Forefront-Antispam-Report", "CAT"]["value"] == "NONE"
    assert fields["X-Microsoft-Antispam", "ARA"]["meaning"] == UNDOCUMENTED
    assert d["bounce"] == [] and not d["is_bounce"]


@pytest.mark.parametrize(
    "value,chosen",
    [
        (
            "spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=x.example; x.example; dkim=none",
            "x.example",
        ),
        (
            "mx.example.com; spf=pass smtp.mailfrom=a@x.example; dkim=pass header.d=x.example",
            "mx.example.com",
        ),
        ("spf=none (sender IP is ) smtp.mailfrom=<>; ", None),
    ],
)
def test_authserv_id_anywhere_or_absent(value, chosen):
    results = parse_authentication_results(value)
    assert results[0].method == "spf" and results[0].authserv_id == chosen


def test_received_spf_and_arc_seal_are_fallbacks():
    text = (
        "Received-SPF: SoftFail (mx.example: domain of transitioning x.example discourages use "
        "of 192.0.2.1 as permitted sender) client-ip=192.0.2.1;\n"
        "ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=lists.example; s=a; b=x\n"
        "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=a; b=y\n"
        "Subject: fallbacks\n"
    )
    auth = analyze_headers(text).to_dict()["auth"]
    assert (auth["spf"]["result"], auth["spf"]["header"]) == ("softfail", "Received-SPF")
    assert auth["spf"]["properties"] == {"client-ip": "192.0.2.1"}
    assert (auth["arc"]["result"], auth["arc"]["header"]) == ("pass", "ARC-Seal")
    assert "i=2" in auth["arc"]["comment"]


def test_ffas_hardening_like_mha():
    assert split_pairs("UIP:(null);(null);(null)SFV:SKI") == [("UIP", ""), ("SFV", "SKI")]
    assert split_pairs("CIP:2001:db8::1;;CTRY:DE") == [("CIP", "2001:db8::1"), ("CTRY", "DE")]


def test_compauth_reasons_and_families():
    assert compauth_reason("000").startswith("The message failed explicit")
    assert compauth_reason("101") == eventcodes.lookup("reason=1xx", "compauth-reason").meaning
    assert compauth_reason("601") == eventcodes.lookup("reason=6xx", "compauth-reason").meaning
    for family in FAMILIES:
        assert family in eventcodes.FAMILIES
    assert eventcodes.FAMILIES.index("exo-status") < eventcodes.FAMILIES.index("scl")
    assert eventcodes.lookup("SCL:-1").family == "scl"
    mine = [c.code for f in FAMILIES for c in eventcodes.entries(f)]
    assert not [c for c in mine if c.lstrip("-").isdigit()]  # no bare numbers: "SCL:5", not "5"


# --- pasted headers ---------------------------------------------------------------------------


def _hops(text: str | bytes) -> list[dict]:
    return [
        {k: h[k] for k in ("from_name", "by", "date_time")}
        for h in analyze_headers(text).to_dict()["hops"]
    ]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda t: "\n".join("    " + ln for ln in t.split("\n")), id="indented"),
        pytest.param(lambda t: t.replace("\nReceived:", "\n\nReceived:"), id="blank-lines"),
        pytest.param(
            lambda t: "\n\nMicrosoft Mail Internet Headers Version 2.0\n" + t, id="preamble"
        ),
        pytest.param(lambda t: "\ufeff" + t, id="bom"),
    ],
)
def test_pasted_headers_are_tolerated(mangle):
    text = (HEADERS / "mha_GetHeadersEWS-test_prop1.txt").read_text()
    clean = _hops(text)
    assert len(clean) == 5
    pasted = mangle(text)
    assert _hops(pasted) == clean
    assert analyze_headers(pasted).subject == "Re: Lake House"


def test_body_after_headers_is_not_taken_for_headers():
    text = (
        "Subject: hi\nReceived: from a by b; Tue, 14 May 2024 09:00:00 +0000\n\nFrom: me\nTo: you\n"
    )
    r = analyze_headers(text)
    assert r.sender is None and len(r.hops) == 1


def test_no_header_is_an_error():
    with pytest.raises(ValueError, match="no message header"):
        analyze_headers("just some words\n")
    # lines that look like headers but are none of a message's: a log's header, "Foo: bar"
    for text in ("Foo: bar\n", "#Software: Microsoft Exchange Server\r\n#Version: 15.0\r\n"):
        with pytest.raises(ValueError, match="no message header"):
            analyze_headers(text)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_headers_saved_by_powershell_in_utf16_are_read(tmp_path, encoding):
    """PowerShell 5.1's ``>`` and Out-File write UTF-16 (with a byte-order mark; a script
    may write it without one)."""
    import subprocess

    text = (
        "Received: from mx.fabrikam.com ([203.0.113.9]) by ex01.contoso.com with ESMTP;"
        " Tue, 14 May 2024 09:00:00 +0000\r\nSubject: Grüße\r\n"
        "Message-ID: <u16@fabrikam.com>\r\nFrom: a@fabrikam.com\r\n\r\n"
    )
    path = tmp_path / "h.txt"
    path.write_bytes(text.encode(encoding))
    done = subprocess.run([LOGANALYZER, "headers", str(path), "--json"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got["subject"], got["message_id"]) == ("Grüße", "<u16@fabrikam.com>")
    assert len(got["hops"]) == 1


def test_two_message_ids_are_said_and_the_first_is_used(tmp_path):
    """A header block with two Message-ID headers (a relay or a client added one): the first
    is the one looked up, and the output says so (it used the first without a word)."""
    text = (
        "Received: from mx.fabrikam.com ([203.0.113.9]) by ex01.contoso.com with ESMTP;"
        " Tue, 14 May 2024 09:00:00 +0000\n"
        "Message-ID: <first@fabrikam.com>\nMessage-ID: <added@relay.fabrikam.com>\n"
        "From: a@fabrikam.com\nSubject: twice\n\n"
    )
    path = tmp_path / "h.txt"
    path.write_text(text)
    said = "2 Message-ID headers: <first@fabrikam.com> is used, not <added@relay.fabrikam.com>"
    for args in ([], ["--json"]):
        env = {**os.environ, "COLUMNS": "200"}
        done = subprocess.run([LOGANALYZER, "headers", str(path), *args], capture_output=True,
                              text=True, timeout=120, env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert said in " ".join(done.stdout.split()), done.stdout
    assert json.loads(done.stdout)["message_id"] == "<first@fabrikam.com>"
    one = analyze_headers(text.replace("Message-ID: <added@relay.fabrikam.com>\n", ""))
    assert not any("Message-ID" in n for n in one.notes)


# --- outputs ----------------------------------------------------------------------------------

HOSTILE = (
    'Received: from <script>alert(1)</script> ([198.51.100.7]) by "><img src=x onerror=alert(2)>'
    " with ESMTP id <b>x</b>; Tue, 14 May 2024 09:00:00 +0000\n"
    "Received: from evil ([198.51.100.8]) by mx.example with ESMTP;"
    " Tue, 14 May 2024 08:59:00 +0000\n"
    'Authentication-Results: spf=pass"><img/src=x/onerror=alert(3)> (<script>x</script>) '
    "smtp.mailfrom=<svg/onload=alert(4)>\n"
    'X-Forefront-Antispam-Report: CIP:<script>;H:"><img onerror=alert(5)>;SFV:NSPM;\n'
    'Subject: <script>alert("s")</script> \x1b[31mred\x1b[0m \x07bell =?utf-8?q?=1B[2Jx?=\n'
    'From: "><img src=x onerror=alert(6)> <a@evil.example>\n'
    "Message-ID: <\x1b]8;;http://evil.example\x07x@evil.example>\n"
)


def test_hostile_values_are_inert_in_html(tmp_path, cli):
    html = analyze_headers(HOSTILE).to_html()
    lowered = html.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<svg/" not in lowered
    assert "<b>" not in lowered
    assert "&lt;script&gt;alert(&#34;s&#34;)&lt;/script&gt;" in html  # the Subject, as text
    assert 'http-equiv="Content-Security-Policy"' in html and "default-src" in html
    assert "<svg" in html  # the delay chart is there, and only it
    assert html.count("<svg") == 1 and "<script" not in lowered
    page = tmp_path / "h.html"
    src = tmp_path / "hostile.eml"
    src.write_text(HOSTILE)
    out = cli("headers", str(src), "--html", str(page))
    assert out.exit_code == 0
    assert "<img" not in page.read_text().lower()


def test_terminal_output_strips_control_characters(tmp_path, cli):
    src = tmp_path / "hostile.eml"
    src.write_text(HOSTILE)
    out = cli("headers", str(src))
    assert out.exit_code == 0
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out.stdout.replace("\n", ""))
    assert "red" in out.stdout and "alert" in out.stdout  # shown, as text


@pytest.mark.parametrize("path", sorted(HEADERS.glob("*.txt")) + [BUILT], ids=lambda p: p.name)
def test_json_equals_the_library_result(cli, path, monkeypatch):
    monkeypatch.delenv("LOGANALYZER_STORE", raising=False)
    out = cli("headers", str(path), "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout) == analyze_headers(path.read_bytes()).to_dict()
    piped = cli("headers", "-", "--json", input=path.read_text(encoding="utf-8"))
    assert json.loads(piped.stdout) == json.loads(out.stdout)


def test_json_names_are_the_contract():
    d = analyze_headers(read("sisimai_lhost-office365-05.txt")).to_dict()
    assert list(d)[:8] == [
        "message_id",
        "network_message_id",
        "subject",
        "hops",
        "auth",
        "antispam",
        "bounce",
        "trace",
    ]
    assert set(d["hops"][0]) >= {
        "from_name",
        "from_ip",
        "by",
        "protocol",
        "tls",
        "id",
        "date_time",
        "delay_s",
        "clock_skew",
    }
    assert set(d["auth"]) == {"spf", "dkim", "dmarc", "arc", "compauth"}
    assert set(d["antispam"][0]) == {"header", "field", "value", "meaning"}
    assert set(d["bounce"][0]) >= {"recipient", "status", "diagnostic", "meaning"}
    assert d["hops"][0]["date_time"].endswith("Z")


def test_html_and_terminal_show_hops_verdicts_and_chart(cli):
    r = analyze_headers(BUILT.read_bytes())
    html = r.to_html()
    for text in ("Hops, oldest first", "compauth", "SFV", "NSPM", "Delay per hop", "TLS1_3"):
        assert text in html
    assert r._repr_html_().lstrip().startswith("<style>")
    out = cli("headers", str(BUILT))
    for text in ("Authentication", "compauth", "Hops, oldest first", "Antispam", "NSPM"):
        assert text in out.stdout
    assert cli("headers", str(BUILT.with_name("missing.eml"))).exit_code == 2


def test_an_ndr_with_only_an_html_body_is_read(tmp_path):
    """An NDR forwarded from Outlook often keeps only its HTML body (quoted-printable): its
    recipients, their status and the original headers are read from the text it shows.
    Built: Exchange's NDR sections (FORMATS.md F.1) as Exchange 2013+ lays them out in HTML."""
    import quopri
    import subprocess

    html = (
        "<html><head><style>p {margin:0}</style></head><body>"
        '<p><b><font color="#000066">Delivery has failed to these recipients or groups:</font>'
        '</b></p><p><a href="mailto:bob@fabrikam.com">bob@fabrikam.com</a><br>The email '
        "address you entered couldn&#39;t be found.</p>"
        "<p><b>Diagnostic information for administrators:</b></p>"
        "<p>Generating server: EX01.contoso.com<br><br>"
        '<a href="mailto:bob@fabrikam.com">bob@fabrikam.com</a><br>Remote Server returned '
        "&#39;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address "
        "lookup&#39;<br><br>"
        '<a href="mailto:carol@fabrikam.com">carol@fabrikam.com</a><br>Remote Server returned '
        "&#39;554 5.4.14 Hop count exceeded - possible mail loop&#39;<br><br>"
        "Original message headers:</p><pre>Received: from EX01.contoso.com (10.0.0.11) by "
        "EX02.contoso.com (10.0.0.12) with Microsoft SMTP Server id 15.1.2507.35; Mon, 2 Mar "
        "2026 09:59:58 +0000\nFrom: Alice &lt;alice@contoso.com&gt;\nSubject: Quarterly "
        "numbers\nMessage-ID: &lt;orig-77@ex01.contoso.com&gt;\n</pre></body></html>"
    )
    body = quopri.encodestring(html.encode()).decode()
    eml = tmp_path / "ndr.eml"
    eml.write_text(
        "From: Microsoft Outlook <postmaster@contoso.com>\nTo: alice@contoso.com\n"
        "Subject: Undeliverable: Quarterly numbers\nMessage-ID: <ndr-77@ex01.contoso.com>\n"
        "Date: Mon, 2 Mar 2026 10:00:00 +0000\nMIME-Version: 1.0\n"
        "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n"
        f"\n{body}"
    )
    done = subprocess.run([LOGANALYZER, "headers", str(eml), "--json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)
    assert d["is_bounce"] is True
    assert [(b["recipient"], b["status"], b["source"]) for b in d["bounce"]] == [
        ("bob@fabrikam.com", "5.1.10", "ndr-text"),
        ("carol@fabrikam.com", "5.4.14", "ndr-text"),
    ]
    assert d["bounce"][0]["diagnostic"].startswith("550 5.1.10 RESOLVER.ADR.RecipientNotFound")
    assert d["reporting_mta"] == "EX01.contoso.com"
    assert d["original"]["message_id"] == "<orig-77@ex01.contoso.com>"


def test_a_bounce_exchange_did_not_write_explains_its_code_by_the_standard_meaning(tmp_path):
    """A Postfix bounce's 5.2.1 was explained as Exchange 2016's "Content Filter agent
    quarantined" (the first table that knows 5.2.1); Postfix means RFC 3463's "mailbox
    disabled". The Exchange Online headers it picked up on delivery do not make it Exchange's."""
    import subprocess

    def bounce(path):
        done = subprocess.run([LOGANALYZER, "headers", str(path), "--json"],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        [b] = json.loads(done.stdout)["bounce"]
        return b

    b = bounce(CORPUS / "headers" / "sisimai_lhost-postfix-57.txt")
    assert b["status"] == "5.2.1"
    assert "mailbox exists but is disabled" in b["meaning"]
    assert [(c["family"], c["code"]) for c in b["codes"]] == [
        ("enhanced-iana", "5.2.1"),
        ("enhanced-exchange", "5.2.1"),  # Exchange's meaning is still there, after it
        ("smtp-reply", "550"),
    ]
    # Exchange's own NDR keeps Exchange's meaning first
    b = bounce(CORPUS / "headers" / "sisimai_lhost-exchange2007-01.txt")
    assert (b["status"], b["codes"][0]["family"]) == ("5.1.1", "enhanced-exchange")
    # Exchange Online quoting another server's reply ("Remote Server returned '501 5.1.8
    # Sender address rejected'", Remote-MTA nijo.example.jp): that server's code, whose
    # standard meaning is first (Exchange Online's own is "blocked for sending spam")
    b = bounce(CORPUS / "headers" / "sisimai_lhost-office365-05.txt")
    assert (b["status"], b["remote_mta"]) == ("5.1.8", "nijo.example.jp")
    assert [c["family"] for c in b["codes"][:2]] == ["enhanced-iana", "enhanced-exchange"]
    assert "spam" not in b["meaning"]
    # the same quoted with an Exchange status tag in it: Exchange gave it
    text = (CORPUS / "headers" / "sisimai_lhost-office365-05.txt").read_text("utf-8")
    tagged = tmp_path / "tagged.eml"
    tagged.write_text(
        text.replace("501 5.1.8 Sender address rejected", "550 5.1.8 RESOLVER.ADR.RecipNotFound"),
        "utf-8",
    )
    assert bounce(tagged)["codes"][0]["family"] == "enhanced-exchange"


SHAPES = {
    # Received line (newest first in the file) -> the hop's "from" as shown
    "from mail.example.com (mail.example.com [203.0.113.5]) by mx.contoso.com (Postfix) with "
    "ESMTPS id 4ABC; Mon, 2 Mar 2026 10:00:05 +0000": "mail.example.com [203.0.113.5]",
    "from [203.0.113.6] (helo=x) by relay.example.com with esmtp (Exim 4.96) id 1abc; "
    "Mon, 2 Mar 2026 10:00:04 +0000": "[203.0.113.6] (HELO x)",
    "from unknown (HELO y) (203.0.113.7) by qmail.example.com with SMTP; "
    "Mon, 2 Mar 2026 10:00:03 +0000": "unknown [203.0.113.7] (HELO y)",
    "from mail-ua0-f171.google.com (209.85.217.171) by EX01.contoso.com (10.0.0.1) with "
    "Microsoft SMTP Server id 15.1.2; Mon, 2 Mar 2026 10:00:02 +0000": (
        "mail-ua0-f171.google.com [209.85.217.171]"
    ),
    "from helo.example.net (rdns.example.net. [198.51.100.7]) by mx.google.com with ESMTPS "
    "id abc.123; Mon, 02 Mar 2026 10:00:01 +0000": (
        "rdns.example.net [198.51.100.7] (HELO helo.example.net)"
    ),
    "from AS9PR06CA0123.eurprd06.prod.outlook.com (2603:10a6:20b:4f6::27) by "
    "DB9PR04MB8123.eurprd04.prod.outlook.com (2603:10a6:10:2c1::9) with Microsoft SMTP Server "
    "id 15.20.1; Mon, 2 Mar 2026 10:00:00 +0000": (
        "AS9PR06CA0123.eurprd06.prod.outlook.com [2603:10a6:20b:4f6::27]"
    ),
}


def test_each_hop_shows_its_host_and_ip_once_through_the_installed_command(tmp_path):
    eml = tmp_path / "shapes.eml"
    received = "".join(f"Received: {line}\n" for line in SHAPES)
    eml.write_text(received + "Subject: hi\nMessage-ID: <s@example.com>\n\nbody\n")
    env = {**os.environ, "COLUMNS": "300"}
    env.pop("LOGANALYZER_STORE", None)
    page = tmp_path / "h.html"
    done = subprocess.run(
        [LOGANALYZER, "headers", str(eml), "--html", str(page)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    cells = re.findall(r"│ \d +│[^│]*│[^│]*│ ([^│]*?) *│", done.stdout)
    assert cells == list(reversed(SHAPES.values()))
    html = page.read_text()
    rows = [re.sub(r"<[^>]+>|\s+", " ", r) for r in re.findall(r"<tr class.*?</tr>", html, re.S)]
    for row, shown in zip(rows, reversed(SHAPES.values()), strict=True):
        ip = shown.split("[")[1].split("]")[0]
        assert row.count(ip) == 1, row


def test_a_bounce_not_in_the_store_says_which_ids_were_asked(tmp_path):
    """``headers --store`` of a bounce the logs do not hold: the line names each ID the store
    was asked for in words (Message-ID, not message_id); the original's hops are titled
    without a blank where the original gives no Message-ID."""
    logs = CORPUS / "exchange2007plus"
    store = tmp_path / "store"
    done = subprocess.run(
        [LOGANALYZER, "ingest", str(logs), "--store", str(store)], capture_output=True, text=True
    )
    assert done.returncode in (0, 1), done.stderr
    ndr = CORPUS / "headers" / "sisimai_lhost-exchange2007-01.txt"
    done = subprocess.run(
        [LOGANALYZER, "headers", str(ndr), "--store", str(store)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    assert "The original message: its hops" in done.stdout
    said = f"Not found in the store: Message-ID <{'0' * 48}@example.com>."
    assert said in done.stdout
    page = tmp_path / "ndr.html"
    subprocess.run(
        [LOGANALYZER, "headers", str(ndr), "--store", str(store), "--html", str(page)],
        capture_output=True,
        check=True,
    )
    assert html.escape(said) in page.read_text(encoding="utf-8")


def test_a_page_of_long_host_names_keeps_its_columns_and_chart_labels(tmp_path):
    """Exchange Online's hosts are long names: the chart cut its labels at its left edge
    ("2. HE1EUR01HT124.eop-EUR01.prod.protection.o" without its first characters) and the
    hop ID column was squeezed to a character a line; the labels are the hosts' first
    labels, the ID kept on one line."""
    page = tmp_path / "h.html"
    done = subprocess.run(
        [LOGANALYZER, "headers", str(CORPUS / "headers" / "sisimai_lhost-office365-05.txt")]
        + ["--html", str(page)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = page.read_text(encoding="utf-8")
    labels = re.findall(r'<text [^>]*text-anchor="end">([^<]*)</text>', text)
    assert labels == ["2. HE1EUR01HT124", "3. SLXP216MB0381"], labels
    assert '<code class="id">15.20.776.10</code>' in text
    assert "code.id { white-space: nowrap;" in text
