"""The code tables and their API, checked against FORMATS.md's lists and the real samples."""

from __future__ import annotations

import csv
import json
import re
import subprocess

import pytest
from conftest import CORPUS, LOGANALYZER, corpus_files

import eventcodes
from eventcodes import Code, UnknownCode, entries, explain_status, lookup, table

EX2003_IDS = [
    0,
    1,
    2,
    *range(4, 11),
    18,
    23,
    26,
    28,
    29,
    31,
    33,
    34,
    43,
    50,
    51,
    52,
    *range(1000, 1008),
    *range(1010, 1043),
]
EVENTS = [
    "AGENTINFO",
    "BADMAIL",
    "CLIENTSUBMISSION",
    "DEFER",
    "DELIVER",
    "DELIVERFAIL",
    "DROP",
    "DSN",
    "DUPLICATEDELIVER",
    "DUPLICATEEXPAND",
    "DUPLICATEREDIRECT",
    "EXPAND",
    "FAIL",
    "HADISCARD",
    "HARECEIVE",
    "HAREDIRECT",
    "HAREDIRECTFAIL",
    "INITMESSAGECREATED",
    "LOAD",
    "MODERATIONEXPIRE",
    "MODERATORAPPROVE",
    "MODERATORREJECT",
    "MODERATORSALLNDR",
    "NOTIFYMAPI",
    "NOTIFYSHADOW",
    "POISONMESSAGE",
    "PROCESS",
    "PROCESSMEETINGMESSAGE",
    "RECEIVE",
    "REDIRECT",
    "RESOLVE",
    "RESUBMIT",
    "RESUBMITDEFER",
    "RESUBMITFAIL",
    "SEND",
    "SUBMIT",
    "SUBMITDEFER",
    "SUBMITFAIL",
    "SUPPRESSED",
    "THROTTLE",
    "TRANSFER",
]
SOURCES = [
    "ADMIN",
    "AGENT",
    "APPROVAL",
    "BOOTLOADER",
    "DNS",
    "DSN",
    "GATEWAY",
    "MAILBOXRULE",
    "MEETINGMESSAGEPROCESSOR",
    "ORAR",
    "PICKUP",
    "POISONMESSAGE",
    "PUBLICFOLDER",
    "QUEUE",
    "REDUNDANCY",
    "RESOLVER",
    "ROUTING",
    "SAFETYNET",
    "SMTP",
    "STOREDRIVER",
]
IANA_DETAILS = {0: 0, 1: 10, 2: 4, 3: 6, 4: 7, 5: 6, 6: 10, 7: 28}  # subject: last detail
REPLIES = [
    211,
    214,
    220,
    221,
    250,
    251,
    252,
    354,
    421,
    450,
    451,
    452,
    455,
    500,
    501,
    502,
    503,
    504,
    550,
    551,
    552,
    553,
    554,
    555,
    235,
    334,
    432,
    454,
    530,
    534,
    535,
    538,
    521,
    556,
]
EXCHANGE_ENHANCED = [
    "4.3.1",
    "4.3.2",
    "4.4.1",
    "4.4.2",
    "4.4.6",
    "4.4.7",
    "4.4.316",
    "4.5.3",
    "4.7.26",
    "5.0.0",
    "5.0.350",
    "5.1.0",
    "5.1.1",
    "5.1.2",
    "5.1.3",
    "5.1.4",
    "5.1.5",
    "5.1.6",
    "5.1.7",
    "5.1.8",
    "5.1.10",
    "5.2.1",
    "5.2.2",
    "5.2.3",
    "5.2.4",
    "5.2.121",
    "5.2.122",
    "5.3.0",
    "5.3.2",
    "5.3.3",
    "5.3.4",
    "5.3.5",
    "5.3.190",
    "5.4.0",
    "5.4.1",
    "5.4.4",
    "5.4.6",
    "5.4.8",
    "5.4.14",
    "5.4.300",
    "5.5.0",
    "5.5.2",
    "5.5.3",
    "5.5.4",
    "5.5.6",
    "5.6.3",
    "5.6.11",
    "5.7.1",
    "5.7.3",
    "5.7.12",
    "5.7.13",
    "5.7.135",
    "5.7.23",
    "5.7.25",
    "5.7.57",
    "5.7.64",
    "5.7.124",
    "5.7.133",
    "5.7.134",
    "5.7.136",
    "5.7.750",
]
RANGES = {
    "4.7.500-699": ("4.7.500", "4.7.699"),
    "4.7.850-899": ("4.7.850", "4.7.899"),
    "5.7.501-513": ("5.7.501", "5.7.513"),
    "5.7.606-649": ("5.7.606", "5.7.649"),
    "5.7.700-749": ("5.7.700", "5.7.749"),
    "5.7.900-999": ("5.7.900", "5.7.999"),
}


@pytest.mark.parametrize("family", eventcodes.FAMILIES)
def test_every_table_is_well_formed(family):
    df = table(family)
    assert len(df) > 0
    assert (df["family"] == family).all()
    assert not df.duplicated(["family", "code"]).any()
    assert df["meaning"].str.strip().str.len().gt(10).all()
    assert df["name"].str.strip().str.len().gt(0).all()
    assert set(df["outcome"]) <= set(eventcodes.OUTCOMES)
    assert set(df["confidence"]) <= {"solid", "observed", "secondary", "unverified"}
    assert df["is_failure"].map(type).eq(bool).all()
    assert df["source"].str.len().gt(0).all() and df["versions"].str.len().gt(0).all()


def test_failure_flag_agrees_with_outcome():
    df = table()
    assert df.loc[df["outcome"].isin(["failed", "deferred"]), "is_failure"].all()
    assert not df.loc[
        df["outcome"].isin(["delivered", "received", "submitted"]), "is_failure"
    ].any()


def test_exchange2003_ids_all_present_and_nothing_invented():
    codes = set(table("exchange2003")["code"])
    assert codes == {str(i) for i in EX2003_IDS}
    assert "19" not in codes and "20" not in codes  # no source has them (FORMATS A.5)
    unverified = table("exchange2003").set_index("code")["confidence"]
    assert unverified["1026"] == "unverified"


def test_exchange_events_and_sources_all_present():
    events = set(table("exchange-event")["code"])
    assert events == set(EVENTS) | {"SENDEXTERNAL"}
    assert "SUSPEND" not in events and "RECIPIENTSUBMITTED" not in events
    assert set(table("exchange-source")["code"]) == set(SOURCES)
    assert lookup("SENDEXTERNAL").confidence == "observed"
    for code in EVENTS:
        assert re.search(r"20(07|13|16)", lookup(code, "exchange-event").versions), code


def test_iana_registry_complete():
    codes = set(table("enhanced-iana")["code"])
    for subject, last in IANA_DETAILS.items():
        for detail in range(last + 1):
            assert f"X.{subject}.{detail}" in codes
    assert {"2.0.0", "4.0.0", "5.0.0"} <= codes  # class-specific meanings


def test_exchange_enhanced_codes_and_ranges():
    codes = set(table("enhanced-exchange")["code"])
    assert set(EXCHANGE_ENHANCED) <= codes
    assert set(RANGES) <= codes
    for stored, (first, last) in RANGES.items():
        for concrete in (first, last):
            entry = lookup(concrete)
            assert entry.code == concrete and entry.family == "enhanced-exchange"
            assert entry.meaning == lookup(stored, "enhanced-exchange").meaning


@pytest.mark.parametrize(
    "code,labels",
    [
        ("4.3.2", ["2016", "2013", "2003", "Online"]),
        ("5.1.4", ["2016", "2013"]),
        ("5.2.2", ["Online"]),
        ("5.2.1", ["2016", "2013", "2003"]),
    ],
)
def test_version_specific_meanings_name_their_versions(code, labels):
    entry = lookup(code)
    for label in labels:
        assert label in entry.meaning, (code, label)


def test_reply_codes_and_eventlog_families():
    assert {str(c) for c in REPLIES} <= set(table("smtp-reply")["code"])
    assert {"4000", "4001", "4003", "4004", "4006"} <= set(table("transport-eventlog")["code"])
    assert lookup("4000").confidence == "unverified"


@pytest.mark.parametrize(
    "asked,family,code,outcome",
    [
        (1020, "exchange2003", "1020", "transferred"),
        ("1028", "exchange2003", "1028", "delivered"),
        ("deliver", "exchange-event", "DELIVER", "delivered"),
        ("5.1.1", "enhanced-exchange", "5.1.1", "failed"),
        ("#5.1.1", "enhanced-exchange", "5.1.1", "failed"),
        (" 4.4.7 ", "enhanced-exchange", "4.4.7", "deferred"),
        ("550", "smtp-reply", "550", "failed"),
        ("DSN", "exchange-event", "DSN", "notification"),
        ("POISONMESSAGE", "exchange-event", "POISONMESSAGE", "quarantined"),
        ("2.1.5", "enhanced-iana", "2.1.5", "delivered"),
        ("4.1.1", "enhanced-iana", "4.1.1", "deferred"),
        ("5.7.23", "enhanced-exchange", "5.7.23", "failed"),
        ("4.7.23", "enhanced-iana", "4.7.23", "deferred"),
        ("4006", "transport-eventlog", "4006", "deferred"),
    ],
)
def test_lookup(asked, family, code, outcome):
    entry = lookup(asked)
    assert isinstance(entry, Code)
    assert (entry.family, entry.code, entry.outcome) == (family, code, outcome)


def test_an_event_also_a_source_can_be_asked_for_as_a_source():
    assert lookup("DSN", family="exchange-source").family == "exchange-source"
    assert lookup("5.1.1", family="enhanced-iana").name.lower().startswith("bad destination")


def test_unknown_codes_and_families():
    with pytest.raises(UnknownCode, match="NOSUCHEVENT"):
        lookup("NOSUCHEVENT")
    with pytest.raises(UnknownCode, match="1019"):
        lookup(1019, family="smtp-reply")
    with pytest.raises(ValueError, match="known: exchange-event"):
        lookup("550", family="nope")


@pytest.mark.parametrize(
    "text,codes",
    [
        ("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", ["5.1.1", "550"]),
        (
            "[{LED=550 4.4.7 QUEUE.Expired; message expired};{FQDN=mx.example.com}]",
            ["4.4.7", "QUEUE.Expired", "550"],  # the tag's own row after its code
        ),
        ("<mx.contoso.com #5.5.0 smtp;550 5.5.0 relay denied>", ["5.5.0", "550"]),
        ("250 2.1.5Recipient OK", ["2.1.5", "250"]),
        ("{IP=203.42.22.10};{LRT=1/21/2025 3:45:12 AM} Version 15.01.2375.007", []),
        ("", []),
    ],
)
def test_explain_status(text, codes):
    assert [c.code for c in explain_status(text)] == codes


def test_explain_status_puts_specific_before_generic():
    found = explain_status("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found")
    assert [c.family for c in found] == ["enhanced-exchange", "smtp-reply"]


def test_explain_status_on_the_status_texts_admins_see():
    texts = {p.name: p.read_text(encoding="utf-8") for p in corpus_files("status-text")}
    rule = explain_status(texts["msqa-347573-ex2016-agent-fail-transport-rule.txt"])
    assert [c.code for c in rule] == ["5.7.1", "TRANSPORT.RULES.RejectMessage", "550"]
    gmail = explain_status(texts["oof-gmail-550-5.7.26-recipientstatus.txt"])
    assert [c.code for c in gmail] == ["5.7.26", "550"]
    assert "authentication" in gmail[0].meaning.lower()
    spf = explain_status(texts["msqa-2149611-exo-trace-detail-defer-bigpond-spf.txt"])
    assert [c.code for c in spf] == ["4.7.23", "451"]
    assert spf[0].outcome == "deferred"


HEADERLESS_2016 = [
    "date-time",
    "client-ip",
    "client-hostname",
    "server-ip",
    "server-hostname",
    "source-context",
    "connector-id",
    "source",
    "event-id",
    "internal-message-id",
    "message-id",
    "network-message-id",
    "recipient-address",
    "recipient-status",
]


def _tracking_rows():
    """Rows of the real tracking samples, read with the csv module (not our parser)."""
    for path in corpus_files("exchange2007plus", pattern="*.log"):
        fields = None
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            if line.startswith("#Fields:"):
                fields = line[8:].strip().split(",")
            elif line and not line.startswith("#"):
                values = next(csv.reader([line]))
                names = fields or HEADERLESS_2016
                yield dict(zip(names, values, strict=False))


def _protocol_lines():
    for path in corpus_files("smtp-protocol", pattern="*.log"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                yield line
    for event in json.loads(
        (CORPUS / "smtp-protocol" / "elastic-test-smtp.json").read_text(encoding="utf-8")
    )["events"]:
        yield event["message"]


def test_every_code_in_the_samples_is_known():
    seen_events, seen_codes = set(), set()
    for row in _tracking_rows():
        seen_events.add(row["event-id"])
        seen_events.add(row["source"])
        for c in explain_status(row.get("recipient-status", "")):
            seen_codes.add(c.code)
    seen_events.add(
        (CORPUS / "exchange2003" / "awstats-maillogconvert-example.log")
        .read_text(encoding="utf-8")
        .split("\t")[8]
    )
    for line in _protocol_lines():
        for code in re.findall(r"(?<![\d.])[245]\.\d{1,3}\.\d{1,3}(?!\.?\d)", line):
            seen_codes.add(code)
        m = re.search(r",[<>],([2-5]\d\d)[ -]", line)
        if m:
            seen_codes.add(m[1])
    for path in corpus_files("iis-smtp"):
        text = path.read_text(encoding="utf-8")
        seen_codes.update(re.findall(r"(?<![\d.])[245]\.\d{1,3}\.\d{1,3}(?!\.?\d)", text))
        for m in re.finditer(r" (\d{3}) \d+ \d+ \d+ \d+ SMTP|\" (\d{3}) \d+$", text, re.MULTILINE):
            if (m[1] or m[2]) != "000":
                seen_codes.add(m[1] or m[2])
    assert {
        "NOTIFYMAPI",
        "SEND",
        "RECEIVE",
        "SENDEXTERNAL",
        "HAREDIRECTFAIL",
        "1019",
    } <= seen_events
    assert {"250", "535", "5.7.3", "2.7.0", "4.7.0", "240", "500"} <= seen_codes
    unknown = sorted(c for c in seen_events | seen_codes if not _known(c))
    assert unknown == []


def _known(code: str) -> bool:
    try:
        lookup(code)
        return True
    except UnknownCode:
        return False


def test_codes_cli_json_equals_lookup(cli):
    for code in ("1020", "DELIVER", "5.1.1", "4.4.7", "550", "5.7.512"):
        result = cli("codes", "--json", code)
        assert result.exit_code == 0
        got = json.loads(result.stdout)
        assert got[0] == lookup(code).to_dict()
        assert got == [c.to_dict() for c in eventcodes.explain(code)]


def test_codes_cli_table_and_family_listing(cli):
    result = cli("codes", "1020", "DELIVER", "5.1.1", "4.4.7", "550")
    assert result.exit_code == 0
    for text in ("exchange2003", "DELIVER", "5.1.1", "4.4.7", "550", "delivered", "deferred"):
        assert text in result.stdout
    listing = cli("codes", "--family", "exchange2003", "--json")
    assert len(json.loads(listing.stdout)) == len(EX2003_IDS)


def test_codes_cli_unknown_code_exits_non_zero(cli):
    result = cli("codes", "DELIVER", "NOSUCH")
    assert result.exit_code == 1
    assert "NOSUCH" in result.stderr
    assert cli("codes", "--family", "bogus").exit_code == 2


@pytest.mark.parametrize(
    "asked,code,outcome",
    [
        ("Delivered", "Delivered", "delivered"),
        # "Filtered as spam": rejected or blocked, not quarantined (EACMT), hence dropped
        ("FilteredAsSpam", "FilteredAsSpam", "dropped"),
        ("Send external", "Send external", "transferred"),
        ("SEND EXTERNAL", "Send external", "transferred"),
        ("send external", "Send external", "transferred"),
        ("GettingStatus", "GettingStatus", "pending"),
        ("Quarantined", "Quarantined", "quarantined"),
        ("Failed", "Failed", "failed"),
        ("Fail", "Fail", "failed"),
        ("Transport rule", "Transport rule", "info"),
    ],
)
def test_exo_status_lookups(asked, code, outcome):
    entry = lookup(asked, family="exo-status")
    assert (entry.family, entry.code, entry.outcome) == ("exo-status", code, outcome)


def test_exo_status_comes_after_the_log_families_and_unconfirmed_events_are_marked():
    order = eventcodes.FAMILIES
    assert order.index("exo-status") == order.index("transport-eventlog") + 1
    assert lookup("Delivered").family == "exo-status"  # no other family has it
    assert lookup("Fail").family == "exchange-event"  # earlier families win
    confidence = table("exo-status").set_index("code")["confidence"]
    assert confidence["Redirect"] == confidence["Submit"] == "unverified"
    statuses = {"Delivered", "Failed", "Pending", "Expanded", "FilteredAsSpam", "Quarantined"}
    assert statuses | {"GettingStatus", "None"} <= set(confidence.index)


def test_every_status_in_the_exchange_online_samples_is_known():
    sample = CORPUS / "o365-trace" / "elastic-exo-message-trace-test-log.log"
    records = [json.loads(x) for x in sample.read_text(encoding="utf-8").splitlines()]
    wrapper = json.loads((CORPUS / "o365-trace" / "sekoia-messagetrace.json").read_text())
    records.append(json.loads(wrapper["input"]["message"]))
    seen = {r["Status"] for r in records if "Status" in r}
    assert seen == {"Delivered", "GettingStatus"}
    assert all(lookup(s, family="exo-status") for s in seen)


# --- meanings in context: the class of an enhanced code, the code of a reply -----------------

#: RFC 3463: the class says success (2), temporary (4) or permanent (5) failure.
CLASS_OUTCOME = {"2": ("delivered", False), "4": ("deferred", True), "5": ("failed", True)}
#: Words that say something went wrong: never in the meaning of a success.
FAILURE_WORDS = re.compile(
    r"\b(fail(ed|s|ure)?|undeliverable|not delivered|rejected|refused|denied|error|"
    r"could not|cannot|can't|problem|bounced?|wrong|invalid)\b",
    re.IGNORECASE,
)
#: Neutral subject rows (X.s.0, X.1.9), failure details and success details of the registry.
SUCCESS_DETAILS = {"X.1.5", "X.3.6", "X.6.4"}
NEUTRAL_DETAILS = {"X.0.0", "X.1.9", *(f"X.{s}.0" for s in range(1, 8))}


def _reply_class(code: str) -> str | None:
    return code[0] if re.fullmatch(r"[2-5]\d\d", code) else None


def test_every_row_of_every_family_agrees_with_its_class():
    """Every stored row: outcome and failure flag follow the code's class; a success never
    reads as a failure; the registry's class-less rows say what kind of detail they are."""
    wrong = []
    for c in eventcodes.entries():
        if c.is_failure != (c.outcome in ("failed", "deferred")) and c.code != "HAREDIRECTFAIL":
            wrong.append((c.family, c.code, "failure flag", c.outcome, c.is_failure))
        in_class = c.family.startswith("enhanced-") and c.code[0] in CLASS_OUTCOME
        if in_class and (c.outcome, c.is_failure) != CLASS_OUTCOME[c.code[0]]:
            wrong.append((c.family, c.code, "class", c.outcome, c.is_failure))
        if c.family == "smtp-reply":
            cls = _reply_class(c.code)
            expected = {"2": {"delivered", "info"}, "3": {"info"}}.get(cls) or {
                CLASS_OUTCOME[cls][0]
            }
            if c.outcome not in expected:
                wrong.append((c.family, c.code, "reply class", c.outcome, c.is_failure))
        success = (
            c.outcome in ("delivered", "received", "submitted", "transferred", "routed")
            or (c.family.startswith("enhanced-") and c.code.startswith("2."))
            or (c.family == "smtp-reply" and c.code.startswith("2"))
        )
        if success and FAILURE_WORDS.search(c.name + " " + c.meaning):
            wrong.append((c.family, c.code, "success worded as failure", c.name, c.meaning))
        if c.family == "enhanced-iana" and c.code.startswith("X."):
            nature = (
                "delivered"
                if c.code in SUCCESS_DETAILS
                else "info"
                if c.code in NEUTRAL_DETAILS
                else "failed"
            )
            if c.outcome != nature:
                wrong.append((c.family, c.code, "detail kind", c.outcome, nature))
    assert wrong == []


@pytest.mark.parametrize("cls", ["2", "4", "5"])
def test_every_registry_detail_in_every_class(cls):
    """Each X.s.d of the registry, asked for as a concrete code of each class."""
    outcome, failure = CLASS_OUTCOME[cls]
    sense = {"2": "Success:", "4": "Temporary failure:", "5": "Permanent failure:"}[cls]
    for row in entries("enhanced-iana"):
        if not row.code.startswith("X."):
            continue
        code = cls + row.code[1:]
        entry = lookup(code, "enhanced-iana")
        assert (entry.code, entry.outcome, entry.is_failure) == (code, outcome, failure)
        assert entry.meaning.startswith(sense), (code, entry.meaning)
        if cls == "2":
            assert not FAILURE_WORDS.search(entry.name + " " + entry.meaning), (code, entry)
        elif row.outcome == "failed":  # a failure detail keeps its meaning in a failure class
            assert entry.meaning.endswith(row.meaning), code


@pytest.mark.parametrize(
    "code,family,name,meaning,outcome",
    [
        (
            "2.6.0",
            "enhanced-exchange",
            "Queued mail for delivery",
            "Success: the receiving Exchange server accepted the message and queued it for "
            "delivery (its reply to the message data: 250 2.6.0 <message-id> Queued mail for "
            "delivery; for a shadow copy: Queued mail for redundancy).",
            "delivered",
        ),
        (
            "5.6.0",
            "enhanced-iana",
            "Other or undefined media status (permanent failure)",
            "Permanent failure: the action will not succeed if tried again. The status concerns "
            "the message content or media; no more specific detail code applies.",
            "failed",
        ),
        (
            "2.7.0",
            "enhanced-iana",
            "Other or undefined security status (success)",
            "Success: the action was completed. The status concerns security or policy (for "
            "example authentication or TLS); no more specific detail code applies.",
            "delivered",
        ),
        (
            "4.1.1",
            "enhanced-iana",
            "Bad destination mailbox address",
            "Temporary failure: the action may succeed if tried again later. The mailbox (the "
            "part before the @) does not exist at the destination.",
            "deferred",
        ),
        (
            "2.1.1",
            "enhanced-iana",
            "Success, addressing status",
            "Success: the action was completed. The detail .1.1 does not go with this class, so "
            "only the class is certain.",
            "delivered",
        ),
        (
            "5.1.5",
            "enhanced-exchange",
            "Reserved second-level domain",
            None,
            "failed",
        ),
        (
            "4.6.4",
            "enhanced-iana",
            "Temporary failure, message content or media status",
            "Temporary failure: the action may succeed if tried again later. The detail .6.4 "
            "does not go with this class, so only the class is certain.",
            "deferred",
        ),
    ],
)
def test_an_enhanced_code_means_what_its_class_says(code, family, name, meaning, outcome):
    entry = lookup(code)
    assert (entry.family, entry.name, entry.outcome) == (family, name, outcome)
    if meaning is not None:
        assert entry.meaning == meaning


QUEUED = "250 2.6.0 <x@y> Queued mail for delivery"


def test_a_queued_reply_is_explained_as_a_success():
    found = explain_status(QUEUED)
    assert [(c.family, c.code, c.outcome) for c in found] == [
        ("enhanced-exchange", "2.6.0", "delivered"),
        ("smtp-reply", "250", "delivered"),
    ]
    assert not any(FAILURE_WORDS.search(c.meaning) for c in found)


def test_an_unlisted_detail_falls_back_to_its_subject_in_its_class():
    [enhanced, reply] = explain_status("250 2.6.99 accepted")
    assert (enhanced.code, enhanced.outcome) == ("2.6.99", "delivered")
    assert enhanced.name == "Other or undefined media status (success) (unlisted detail code)"
    assert enhanced.meaning.startswith("Success: the action was completed.")
    [enhanced, _] = explain_status("451 4.7.321 try later")
    assert (enhanced.code, enhanced.outcome) == ("4.7.321", "deferred")
    assert enhanced.meaning.startswith("Temporary failure:")


EXCH, IANA, REPLY = "enhanced-exchange", "enhanced-iana", "smtp-reply"


@pytest.mark.parametrize(
    "asked,codes",
    [
        # an Exchange meaning is followed by the registry's (RFC 3463) one
        ("2.6.0", [(EXCH, "2.6.0"), (IANA, "2.6.0")]),
        ("DELIVER", [("exchange-event", "DELIVER")]),
        (QUEUED, [(EXCH, "2.6.0"), (IANA, "2.6.0"), (REPLY, "250")]),
        (
            "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
            [(EXCH, "5.1.1"), (IANA, "5.1.1"), (REPLY, "550")],
        ),
        ("4.7.321", [(IANA, "4.7.321")]),
        ("5.7.512", [(EXCH, "5.7.512")]),  # the registry has no X.7.512
    ],
)
def test_explain_takes_a_code_or_a_whole_reply(asked, codes):
    assert [(c.family, c.code) for c in eventcodes.explain(asked)] == codes


def test_explain_of_text_without_codes_is_unknown():
    with pytest.raises(UnknownCode, match="Queued mail"):
        eventcodes.explain("Queued mail for delivery")
    with pytest.raises(UnknownCode):
        eventcodes.explain(QUEUED, family="exchange-event")
    assert [c.code for c in eventcodes.explain(QUEUED, family="smtp-reply")] == ["250"]


def _installed(*args: str) -> subprocess.CompletedProcess:
    exe = LOGANALYZER
    assert exe, "the loganalyzer command is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_installed_codes_explains_a_whole_reply_and_a_success_class():
    done = _installed("codes", "--json", QUEUED)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert [(e["family"], e["code"], e["outcome"]) for e in got] == [
        ("enhanced-exchange", "2.6.0", "delivered"),
        ("enhanced-iana", "2.6.0", "delivered"),
        ("smtp-reply", "250", "delivered"),
    ]
    assert got[0]["meaning"].startswith("Success: the receiving Exchange server accepted")
    done = _installed("codes", "--json", "2.6.0", "5.6.0")
    assert [(e["family"], e["code"], e["outcome"]) for e in json.loads(done.stdout)] == [
        ("enhanced-exchange", "2.6.0", "delivered"),
        ("enhanced-iana", "2.6.0", "delivered"),
        ("enhanced-iana", "5.6.0", "failed"),
    ]
    assert "undeliverable" not in json.loads(done.stdout)[0]["meaning"]
    done = _installed("codes", "Queued mail for delivery")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "unknown code 'Queued mail for delivery'" in done.stderr


def test_an_exchange_status_tag_pasted_alone_is_explained():
    """What an NDR shows after the code (RESOLVER.ADR.RecipNotFound, QUEUE.Expired) gives the
    tag's own row when it has one, then the code it comes with, through the command too; a
    whole reply keeps its order."""
    tags = {
        "RESOLVER.ADR.RecipNotFound": [(EXCH, "5.1.1"), (IANA, "5.1.1")],  # no row of its own
        "resolver.adr.exrecipnotfound": [
            ("exchange-tag", "RESOLVER.ADR.ExRecipNotFound"), (EXCH, "5.1.1"), (IANA, "5.1.1"),
        ],
        "QUEUE.Expired": [("exchange-tag", "QUEUE.Expired"), (EXCH, "4.4.7"), (IANA, "4.4.7")],
        "RESOLVER.RST.RecipSizeLimit": [
            ("exchange-tag", "RESOLVER.RST.RecipSizeLimit"), (EXCH, "5.2.3"), (IANA, "5.2.3"),
        ],
    }  # fmt: skip
    for tag, rows in tags.items():
        assert [(c.family, c.code) for c in eventcodes.explain(tag)] == rows, tag
    full = "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
    assert [c.code for c in eventcodes.explain_status(full)] == ["5.1.1", "550"]
    done = _installed("codes", *tags, "--json")
    assert done.returncode == 0, done.stderr
    got = [(r["family"], r["code"]) for r in json.loads(done.stdout)]
    assert got == [row for rows in tags.values() for row in rows]
    unknown = _installed("codes", "RESOLVER.NOPE.Nothing")
    assert unknown.returncode == 1 and "unknown code" in unknown.stderr


def test_a_components_tag_gives_every_code_it_follows_and_a_reply_its_own():
    """STOREDRV.Deliver follows 5.3.2 and is named in 4.3.2's text: pasted alone it gave
    4.3.2 (service not available, deferred) only; a whole reply with its own code gave that
    code and 4.3.2 besides."""
    got = json.loads(_installed("codes", "STOREDRV.Deliver", "--json").stdout)
    assert [(r["family"], r["code"], r["outcome"]) for r in got] == [
        (EXCH, "4.3.2", "deferred"),
        (IANA, "4.3.2", "deferred"),
        (EXCH, "5.3.2", "failed"),
        (IANA, "5.3.2", "failed"),
    ]
    reply = "550 5.3.2 STOREDRV.Deliver; missing or bad StoreDriver MDB properties"
    got = json.loads(_installed("codes", reply, "--json").stdout)
    assert [r["code"] for r in got] == ["5.3.2", "5.3.2", "550"]


def test_codes_shows_the_standard_meaning_after_exchanges():
    """5.2.1 is 'quarantined' to Exchange 2016 but 'mailbox disabled' to RFC 3463 and so to
    Postfix or Gmail: codes showed Exchange's meaning only."""
    done = _installed("codes", "5.2.1")
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    exchange, standard = out.index("enhanced-exchange │ 5.2.1"), out.index("enhanced-iana │ 5.2.1")
    assert exchange < standard
    assert "5.2.1: Exchange's meaning first (enhanced-exchange), then the standard RFC 3463" in out
    rows = json.loads(_installed("codes", "5.2.1", "--json").stdout)
    assert [(r["family"], r["name"]) for r in rows] == [
        (EXCH, "Quarantined / mailbox not accessible / too large"),
        (IANA, "Mailbox disabled, not accepting messages"),
    ]
    assert "Content Filter agent quarantined" in rows[0]["meaning"]
    # asked for one family, only that family's entry
    rows = json.loads(_installed("codes", "5.2.1", "--family", IANA, "--json").stdout)
    assert [r["family"] for r in rows] == [IANA]


@pytest.mark.parametrize(
    "tag,outcome",
    [
        ("QUEUE.Admin", "dropped"),  # not 4.3.2's "deferred"
        ("QUEUE.TransportAgent", "dropped"),
        ("QUEUE.Expired", "failed"),  # not 4.4.7's "deferred": it is not retried any more
    ],
)
def test_a_tag_that_decides_the_outcome_gives_its_own(tag, outcome):
    rows = json.loads(_installed("codes", tag, "--json").stdout)
    first = rows[0]
    assert (first["family"], first["code"], first["outcome"]) == ("exchange-tag", tag, outcome)
    assert rows[1]["outcome"] == "deferred"  # the code's own row is still there, after it
    out = " ".join(_installed("codes", tag).stdout.split())
    assert f"{tag}: the tag says what became of the message ({outcome})" in out
    reply = "550 4.3.2 QUEUE.Admin; message deleted by administrative action"
    rows = json.loads(_installed("codes", reply, "--json").stdout)
    assert [(r["code"], r["outcome"]) for r in rows] == [
        ("4.3.2", "deferred"),
        ("4.3.2", "deferred"),
        ("QUEUE.Admin", "dropped"),
        ("550", "failed"),
    ]


#: Exchange status tags Microsoft documents, with the code each comes with and its outcome.
DOCUMENTED_TAGS = {
    "TRANSPORT.RULES.RejectMessage": ("5.7.1", "failed"),  # MS-NDR16, Exchange Online limits
    "RESOLVER.RST.AuthRequired": ("5.7.1", "failed"),  # Exchange Online NDR 5.7.1 page
    "RESOLVER.ADR.ExRecipNotFound": ("5.1.1", "failed"),  # MS-NDR16
    "RESOLVER.ADR.RecipLimit": ("5.5.3", "failed"),  # KB3024804
    "RESOLVER.RST.RecipSizeLimit": ("5.2.3", "failed"),  # MS-NDR16
    "STOREDRV.Submit": ("5.1.3", "failed"),  # MS-NDR16
    "SMTPSEND.DNS.NonExistentDomain": ("5.4.4", "failed"),  # MS-NDR16
}


def test_documented_status_tags_are_known_with_their_code_and_outcome():
    done = _installed("codes", *DOCUMENTED_TAGS, "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    for tag, (code, outcome) in DOCUMENTED_TAGS.items():
        at = next(i for i, r in enumerate(rows) if r["code"] == tag)
        assert (rows[at]["family"], rows[at]["outcome"]) == ("exchange-tag", outcome), tag
        assert re.match(rf"(\d{{3}} )?{re.escape(code)} {re.escape(tag)};", rows[at]["meaning"])
        assert (rows[at + 1]["family"], rows[at + 1]["code"]) == (EXCH, code), tag
        assert rows[at]["source"] and rows[at]["confidence"] == "solid", tag
    # tags no Microsoft page names are not made up
    for tag in ("ROUTING.NoNextHop", "SMTPSEND.DNS.MxLoopback"):
        assert _installed("codes", tag).returncode == 1, tag


def test_a_tag_of_another_code_than_the_reply_is_not_its_reading():
    # Exchange's submit deferral "432 4.3.2 STOREDRV.Submit": the tag's row is its 5.1.3
    # (invalid recipient address), which read the deferral as a bad address
    def families(reply: str) -> list[tuple[str, str]]:
        done = subprocess.run([LOGANALYZER, "codes", reply, "--json"], capture_output=True,
                              text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return [(r["family"], r["code"]) for r in json.loads(done.stdout)]

    deferral = families("432 4.3.2 STOREDRV.Submit; mailbox database thread limit exceeded")
    assert ("enhanced-exchange", "4.3.2") in deferral
    assert ("exchange-tag", "STOREDRV.Submit") not in deferral
    assert ("exchange-tag", "STOREDRV.Submit") in families("550 5.1.3 STOREDRV.Submit; invalid")
    assert ("exchange-tag", "STOREDRV.Submit") in families("STOREDRV.Submit")
