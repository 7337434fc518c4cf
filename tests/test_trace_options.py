"""The trace command's ways to name a message and how it prints, through the command: a
Message-ID in another case, a server by its host name, ``--pick`` with ``--all``, and the
width of a trace written to a pipe."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import LOGANALYZER
from logfiles import row, write_log

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate

#: Two messages whose Message-IDs differ only in case (a local part is case-sensitive).
TWINS = ("<Twin1@contoso.com>", "<twin1@contoso.com>")
#: A Message-ID in mixed case, as Exchange Online writes them.
MIXED = "<AM3PR01MB57693E9E@AM3PR01MB5769.eurprd02.prod.outlook.com>"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("options")
    generate(root / "logs", servers=2, messages=40, seed=3)
    write_log(
        root / "logs" / "twins" / "MSGTRK2026030210-1.LOG",
        [row(i, message_id=mid) for i, mid in enumerate((*TWINS, MIXED))],
    )
    summary = ingest([root / "logs"], root / "store")
    assert summary.exit_code == 0 and summary.quarantined == 0
    return str(root / "store")


def _run(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed command, its output piped (no terminal), as a script runs it."""
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | (env or {})
    done = subprocess.run(
        [LOGANALYZER, *map(str, args)], capture_output=True, text=True, timeout=300, env=environ
    )
    assert "Traceback" not in done.stderr
    return done


def _traced(store: str, *args) -> dict:
    done = _run("trace", *args, "--store", store, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _a_message(store: str, hops: int = 1) -> dict:
    """A traced synth message of two recipients with an SMTP conversation on ``hops`` hops."""
    listed = _traced(store, "--since", "2026-03-01", "--all")["messages"]
    return next(
        m
        for m in listed
        if len(m["recipients"]) == 2
        and "@ex02.contoso.com" in m["message_id"]
        and sum(1 for e in m["events"] if e["conversation"]) >= hops
    )


def test_a_message_id_in_another_case_is_found_and_said(store):
    logged = _a_message(store)["message_id"]
    local, domain = logged.split("@")
    for given in (logged.upper(), f"{local}@{domain.upper()}"):
        done = _run("trace", given, "--store", store)
        assert done.returncode == 0, done.stderr
        assert f"Message-ID  {logged}" in done.stdout
        assert done.stderr == (
            f"note: no message has the Message-ID {given} exactly; traced {logged}, which "
            "differs from it only in case\n"
        )
        got = _traced(store, given)
        assert got["query"]["as_given"] == given and got["query"]["text"] == logged
        assert [m["message_id"] for m in got["messages"]] == [logged]
    exact = _run("trace", logged, "--store", store)
    assert exact.returncode == 0 and exact.stderr == ""
    other = _run("trace", logged.replace("@", "x@"), "--store", store)
    assert other.returncode == 1 and "No message in the store matches" in other.stderr


def test_an_exact_message_id_wins_over_one_in_another_case(store):
    for mid in TWINS:
        got = _traced(store, mid)
        assert [m["message_id"] for m in got["messages"]] == [mid]
        assert "as_given" not in got["query"]
    # neither exactly: the spellings tried are the ID's in lower and upper case (the lookup
    # sketches hash IDs as logged: each spelling is one fast lookup, a mixed case none)
    lower = _traced(store, "<TWIN1@CONTOSO.COM>")
    assert [m["message_id"] for m in lower["messages"]] == ["<twin1@contoso.com>"]
    assert lower["query"]["as_given"] == "<TWIN1@CONTOSO.COM>"


def test_a_message_id_in_any_mix_of_cases_is_found(store):
    """A Message-ID typed in a case none of the quick spellings gives (all lower where the
    logged one mixes cases, as Exchange Online's do) was not found: the Message-IDs of the
    store are read once in any case before saying nothing matches."""
    given = MIXED.lower()
    local, domain = MIXED.split("@")
    assert MIXED not in (given.upper(), f"{given.split('@')[0]}@{domain}")
    done = _run("trace", given, "--store", store)
    assert done.returncode == 0, done.stderr
    assert f"Message-ID  {MIXED}" in done.stdout
    assert f"traced {MIXED}, which differs from it only in case" in done.stderr
    got = _traced(store, given)
    assert got["query"]["as_given"] == given and got["query"]["text"] == MIXED


def _on_ex02(message: dict) -> str:
    """The message's internal ID on EX02."""
    return next(e["internal_message_id"] for e in message["events"]
                if e["server"] == "EX02" and e["internal_message_id"])  # fmt: skip


def test_server_by_its_host_name(store):
    m = _a_message(store)
    internal = _on_ex02(m)
    by_name = _traced(store, internal, "--server", "EX02")
    assert by_name["messages"] and by_name["messages"][0]["message_id"] == m["message_id"]
    for host in ("ex02.contoso.com", "EX02.Contoso.Com", "ex02"):
        assert _traced(store, internal, "--server", host)["messages"] == by_name["messages"]
    elsewhere = _run("trace", internal, "--server", "ex09.contoso.com", "--store", store)
    assert elsewhere.returncode == 1
    assert "internal message ID" in elsewhere.stderr and "on ex09.contoso.com" in elsewhere.stderr


def test_a_host_of_another_organisation_is_not_the_server_of_its_first_label(store):
    # adatum.com is a partner's domain (no mailbox of the organisation is delivered in it,
    # no server of it names itself in it): its ex02 is not the organisation's EX02
    m = _a_message(store)
    internal = _on_ex02(m)
    # ex02.com: a top-level domain alone is no domain of the organisation's, though its
    # servers' names end in .com
    for host in ("ex02.adatum.com", "EX02.adatum.com (192.0.2.9)", "ex02.com", "EX02.COM"):
        done = _run("trace", internal, "--server", host, "--store", store)
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr.count("\n") == 1 and f"on {host}" in done.stderr
    listed = _run("trace", "--server", "ex02.adatum.com", "--since", "2026-03-01", "--store", store)
    assert listed.returncode == 1 and "server ex02.adatum.com" in listed.stderr
    # fabrikam.com is one of the organisation's accepted domains (mailboxes are delivered in
    # it): a host in it is the organisation's
    assert _traced(store, internal, "--server", "ex02.fabrikam.com")["messages"]
    assert _traced(store, internal, "--server", " EX02 ")["messages"]  # pasted with spaces


def test_pick_with_all_is_a_usage_error(store):
    done = _run("trace", "--since", "2026-03-01", "--all", "--pick", 2, "--store", store)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: --pick 2 and --all: give one (the N-th listed message, or every one)\n"
    )


def test_traces_of_all_say_which_of_how_many_and_a_list_cut_to_one_stays_a_list(store):
    """``--all --limit 2`` traced two messages with no word of the others that match, and a
    list cut to one by ``--limit`` was traced as if it were the only match."""
    total = _traced(store, "--since", "2026-03-01", "--limit", 1)["total"]
    assert total > 2
    done = _run("trace", "--since", "2026-03-01", "--all", "--limit", 2, "--store", store)
    assert done.returncode == 0, done.stderr
    heads = [x.strip("─ ") for x in done.stdout.splitlines() if x.startswith("─")]
    assert heads == ["1 of 2", "2 of 2"]
    assert done.stdout.count("Message-ID  ") == 2
    last = done.stdout.splitlines()[-1]
    assert last == f"traced 2 of {total:,} matching messages (--limit N for more)"
    one = _run("trace", "--since", "2026-03-01", "--limit", 1, "--store", store)
    assert one.returncode == 0, one.stderr
    assert "Message-ID  " not in one.stdout
    assert f"showing the first 1 of {total:,}" in one.stdout
    assert _traced(store, "--since", "2026-03-01", "--limit", 1)["messages"] == []


def test_a_trace_written_to_a_pipe_is_as_wide_as_its_conversations_need(store):
    mid = _a_message(store, hops=2)["message_id"]
    piped = _run("trace", mid, "--store", store)
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert 120 <= max(map(len, lines)) <= 200
    narrow = _run("trace", mid, "--store", store, env={"COLUMNS": "80"}).stdout.splitlines()
    assert max(map(len, narrow)) <= 80  # COLUMNS is the user's: kept
    assert len(lines) < len(narrow)
    # a conversation's lines are whole, not cut into a column a few characters wide
    assert any("EHLO ex02.contoso.com" in x for x in lines)


def test_the_timeline_reads_at_a_glance_and_each_conversation_is_shown_once(store):
    """Each SMTP row of the timeline carried its whole conversation under its recipients (at
    80 columns hundreds of lines a message): the timeline names each conversation, and they
    follow it, numbered, each line once."""
    m = _a_message(store, hops=2)
    talks = [e for e in m["events"] if e["conversation"]]
    out = _run("trace", m["message_id"], "--store", store, env={"COLUMNS": "80"}).stdout
    timeline = out[out.index("Timeline (") : out.index("└", out.index("Timeline ("))]
    assert "EHLO" not in timeline
    assert len(timeline.splitlines()) <= 8 * len(m["events"])
    events = "".join(x.split("│")[3] for x in timeline.splitlines() if x.count("│") == 6)
    for n, e in enumerate(talks, 1):
        assert f"conversation{n}below" in events.replace(" ", "")
        assert f"SMTP conversation {n}: {e['event_id']} SMTP on {e['server']}" in out
    ehlo = sum(1 for e in talks for c in e["conversation"] if (c["data"] or "").startswith("EHLO"))
    assert out.count("< EHLO") + out.count("> EHLO") == ehlo > 0


def test_a_reader_holds_duckdb_to_bounded_memory_and_leaves_no_spill_folder(store, tmp_path):
    """A command's DuckDB is held to a few hundred MB (DuckDB's own default is 80% of the
    machine: listing the delivered messages of a 2 GB store took 1 GB), spilling beyond it to
    a temporary folder of the process, which is gone once it exits."""
    out = subprocess.run(
        [
            LOGANALYZER,
            "sql",
            "select current_setting('memory_limit') as m, current_setting('temp_directory') as t",
            "--store",
            store,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    (got,) = json.loads(out.stdout)
    number, unit = got["m"].split()
    assert unit == "MiB" and 100 < float(number) <= 512, got
    assert os.path.basename(got["t"]).startswith("loganalyzer-")
    assert not os.path.exists(got["t"])  # removed at the exit
    # a list by verdict is decided within that memory, the same as before
    listed = subprocess.run(
        [LOGANALYZER, "trace", "--verdict", "delivered", "--store", store, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert found["total"] > 0
    assert all(any(v["verdict"] == "delivered" for v in c["verdicts"]) for c in found["candidates"])


@pytest.mark.parametrize(
    ("given", "searched"),
    [
        ("<bjorn.jansen@contoso.com>", "bjorn.jansen@contoso.com"),
        ("Bjorn Jansen <bjorn.jansen@contoso.com>", "bjorn.jansen@contoso.com"),
        ('"Jansen, Bjorn" <bjorn.jansen@contoso.com> ', "bjorn.jansen@contoso.com"),
        ("@contoso.com", "*@contoso.com"),
        ("contoso.com", "*@contoso.com"),
        ("@*.contoso.com", "*@*.contoso.com"),
        # as they were: an address, a pattern, the null sender, words
        ("bjorn.jansen@contoso.com", "bjorn.jansen@contoso.com"),
        ("*contoso.com", "*contoso.com"),
        ("<>", "<>"),
        ("Bjorn Jansen", "Bjorn Jansen"),
    ],
)
def test_an_address_as_users_copy_it_is_the_pattern_searched(given, searched):
    from loganalyzer.read.query import address_pattern

    assert address_pattern(given) == searched


def test_trace_takes_an_address_as_outlook_copies_it_and_a_bare_domain(store):
    """``Name <a@b>``, ``<a@b>``, ``@domain`` and ``domain`` found nothing; now they find what
    the address or ``*@domain`` finds, and a note says which pattern was searched."""
    sender = _a_message(store)["sender"]
    domain = sender.split("@")[1]
    by_address = _traced(store, "--sender", sender)["total"]
    by_domain = _traced(store, "--recipient", f"*@{domain}")["total"]
    assert by_address > 0 and by_domain > 0
    for option, given, total in [
        ("--sender", f"<{sender}>", by_address),
        ("--sender", f"Some One <{sender}>", by_address),
        ("--recipient", f"@{domain}", by_domain),
        ("--recipient", domain, by_domain),
    ]:
        got = _traced(store, option, given)
        assert got["total"] == total, given
        assert got["query"]["typed"] == {option[2:]: given}
        done = _run("trace", option, given, "--store", store, "--limit", "1")
        assert done.returncode == 0
        searched = sender if option == "--sender" else f"*@{domain}"
        assert f"note: searched {option[2:]} {searched} for {given!r}\n" in done.stderr
    assert "typed" not in _traced(store, "--sender", sender)["query"]


def test_a_message_id_with_one_bracket_lost_is_found(store):
    logged = _a_message(store)["message_id"]
    for given in (logged[:-1], logged[1:]):
        got = _traced(store, given)
        assert [m["message_id"] for m in got["messages"]] == [logged], given


def test_until_a_day_covers_that_day(store):
    """``--since 2026-03-02 --until 2026-03-02`` was refused: "is not before --until"."""
    day = _traced(store, "--since", "2026-03-02T00:00", "--until", "2026-03-03T00:00")
    assert day["total"] > 0
    got = _traced(store, "--since", "2026-03-02", "--until", "2026-03-02")
    assert got["total"] == day["total"]
    assert got["query"]["until"] == "2026-03-03T00:00:00+00:00"
    done = _run("trace", "--help")
    assert "a day (2026-03-02, yesterday) to its end" in " ".join(done.stdout.split())
