"""The web app's guards, seen from outside: the command refuses an exposed address without a
token; with one, nothing is served without the token link or its cookie; the one POST needs
its CSRF token; bodies past the limit get 413; every response carries the strict CSP."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from email.utils import getaddresses

import httpx
import pytest
from conftest import CORPUS, ROOT
from logfiles import row, write_log
from webserver import free_port, run, serving

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate

TOKEN = "correct-horse-battery-staple-42"
STRICT = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:; "
    "base-uri 'none'; form-action 'self'; script-src 'none'; frame-ancestors 'none'"
)
NO_TOKEN = {"LOGANALYZER_WEB_TOKEN": ""}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("websec")
    generate(base / "logs", servers=1, days=1, messages=20, seed=3)
    assert ingest([base / "logs"], base / "store").exit_code == 0
    return base / "store"


def test_an_exposed_address_without_a_token_is_refused(store):
    done = run("--store", str(store), "--host", "0.0.0.0", "--port", str(free_port()), env=NO_TOKEN)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: --host 0.0.0.0: not a loopback address; set ")
    assert "$LOGANALYZER_WEB_TOKEN" in done.stderr and "Traceback" not in done.stderr


def test_a_short_token_is_refused(store):
    done = run("--store", str(store), "--host", "0.0.0.0", env={"LOGANALYZER_WEB_TOKEN": "abc"})
    assert done.returncode == 2
    assert done.stderr == "error: $LOGANALYZER_WEB_TOKEN: too short; give 16 or more characters\n"


def test_a_path_that_is_not_a_store_is_refused(tmp_path):
    done = run("--store", str(tmp_path / "nothing"), "--port", str(free_port()), env=NO_TOKEN)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_a_busy_port_is_refused(store):
    with serving(store, env=NO_TOKEN) as url:
        port = url.rsplit(":", 1)[1]
        done = run("--store", str(store), "--port", port, env=NO_TOKEN)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: --port {port}: cannot listen on 127.0.0.1:{port} (")
    assert done.stderr.count("\n") == 1


def test_with_a_token_requests_need_it(store):
    with serving(store, env={"LOGANALYZER_WEB_TOKEN": TOKEN}) as url:
        for path in ("/", "/status", "/trace?id=x", "/headers", "/nothing"):
            r = httpx.get(url + path)
            assert r.status_code == 401, path
            assert r.headers["content-security-policy"] == STRICT
        assert httpx.get(url + "/?token=wrong-token-of-some-length").status_code == 401
        r = httpx.post(url + "/headers", data={"text": "Subject: x"})
        assert r.status_code == 401
        # the link: a cookie, then the same page without the token in its address
        r = httpx.get(url + "/status?token=" + TOKEN, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/status"
        cookie = r.headers["set-cookie"]
        assert re.fullmatch(r"la_session=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict", cookie)
        assert TOKEN not in cookie
        with httpx.Client(base_url=url, cookies=r.cookies) as signed:
            page = signed.get("/status")
            assert page.status_code == 200
            assert "<h1>Store status</h1>" in page.text
        assert httpx.get(url + "/status", cookies={"la_session": "0" * 64}).status_code == 401
        # the link never sends the browser elsewhere
        r = httpx.get(url + "//evil.example/x?token=" + TOKEN, follow_redirects=False)
        assert r.headers["location"] == "/evil.example/x"


def test_on_loopback_a_request_to_another_name_is_refused(store):
    """Without a token, a request whose Host is not a loopback name is refused: a page of
    another site whose name points at 127.0.0.1 (DNS rebinding) cannot read the app."""
    with serving(store, env=NO_TOKEN) as url:
        port = url.rsplit(":", 1)[1].strip("/")
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.1", f"[::1]:{port}"):
            assert httpx.get(url + "/status", headers={"Host": host}).status_code == 200, host
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
            r = httpx.get(url + "/?sender=*", headers={"Host": host})
            assert r.status_code == 421, host
            assert r.text == "this app answers only at a loopback address (localhost, 127.0.0.1)"
            assert r.headers["content-security-policy"] == STRICT
    # with a token (any address) the session cookie, bound to its site, is the guard
    with serving(store, env={"LOGANALYZER_WEB_TOKEN": TOKEN}) as url:
        r = httpx.get(url + "/status?token=" + TOKEN, follow_redirects=False)
        with httpx.Client(base_url=url, cookies=r.cookies) as signed:
            assert signed.get("/status", headers={"Host": "mail-tools.contoso.com"}).is_success


def test_the_post_needs_its_csrf_token_and_nothing_else_is_posted(store):
    with serving(store, env=NO_TOKEN) as url:
        form = httpx.get(url + "/headers").text
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', form)[1]
        header = "Message-ID: <nothing@example.net>\nSubject: hello\n\n"
        r = httpx.post(url + "/headers", data={"text": header})
        assert r.status_code == 403
        assert "CSRF token is missing or wrong" in r.text
        r = httpx.post(url + "/headers", data={"text": header, "csrf": "0" * 64})
        assert r.status_code == 403
        r = httpx.post(url + "/headers", data={"text": header, "csrf": csrf})
        assert r.status_code == 200
        assert "Not found in the store: Message-ID &lt;nothing@example.net&gt;." in r.text
        for path in ("/", "/trace", "/status", "/reports", "/report"):
            assert httpx.post(url + path, data={"csrf": csrf}).status_code == 405, path


def test_oversized_bodies_get_413(store):
    with serving(store, env=NO_TOKEN) as url:
        big = b"x" * (2 * 1024 * 1024 + 1)
        r = httpx.post(url + "/headers", content=big)
        assert r.status_code == 413
        assert r.text == "request too large: at most 2,097,152 bytes"

        def chunks():  # no Content-Length: the body is counted as it arrives
            for _ in range(40):
                yield b"y" * 65536

        r = httpx.post(
            url + "/headers",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 413


def test_every_page_carries_the_strict_policy(store):
    with serving(store, env=NO_TOKEN) as url:
        for path in ("/", "/?recipient=*", "/status", "/reports", "/headers", "/nope"):
            r = httpx.get(url + path)
            assert r.headers["content-security-policy"] == STRICT, path
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
        assert httpx.get(url + "/nope").status_code == 404


def test_redact_hides_addresses_and_subjects(store, tmp_path):
    logs = store.parent / "logs"
    truth = [json.loads(x) for x in (logs / "truth.jsonl").open(encoding="utf-8")]
    t = next(t for t in truth if t["subject"] and t["verdict"] == "delivered")
    with serving(store, "--redact", env=NO_TOKEN) as url:
        found = httpx.get(url + "/", params={"q": t["message_id"]})
        traced = httpx.get(url + "/trace", params={"id": t["message_id"]})
    for r in (found, traced):
        assert r.status_code == 200
        assert "addresses redacted" in r.text
        assert t["sender"] not in r.text and t["recipient"] not in r.text
        assert t["subject"] not in r.text
        assert "(hidden)" in r.text
    domain = t["recipient"].partition("@")[2]
    assert re.search(rf"\b[0-9a-f]{{10}}@{re.escape(domain)}\b", traced.text)
    assert "delivered" in traced.text


def test_redact_hides_the_addresses_events_relate_to(tmp_path):
    """An expansion's list and a moderator are addresses too (they were shown as written)."""
    generate(tmp_path / "logs", servers=1, days=1, messages=150, seed=3)
    assert ingest([tmp_path / "logs"], tmp_path / "store").exit_code == 0
    truth = [json.loads(x) for x in (tmp_path / "logs" / "truth.jsonl").open(encoding="utf-8")]
    t = next(t for t in truth if t["expanded_from"])
    with serving(tmp_path / "store", env=NO_TOKEN) as url:
        plain = httpx.get(url + "/trace", params={"id": t["message_id"]}).text
    assert f"related: {t['expanded_from']}" in plain
    with serving(tmp_path / "store", "--redact", env=NO_TOKEN) as url:
        hidden = httpx.get(url + "/trace", params={"id": t["message_id"]}).text
    assert "related: " in hidden and t["expanded_from"] not in hidden
    assert t["recipient"] not in hidden


def test_store_work_does_not_hold_up_other_requests(store):
    """Reports being computed (in worker threads) leave the server free to answer."""
    with serving(store, env=NO_TOKEN) as url:
        done: dict[str, float] = {}

        def report(days: int) -> None:
            r = httpx.get(url + "/report", params={"date": "2026-03-02", "days": days}, timeout=300)
            assert r.status_code == 200
            done[f"report{days}"] = time.monotonic()

        threads = [threading.Thread(target=report, args=(d,)) for d in (1, 2, 3, 4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        assert httpx.get(url + "/headers", timeout=60).status_code == 200
        answered = time.monotonic()
        for t in threads:
            t.join()
    assert len(done) == 4
    assert answered < max(done.values())


def test_redact_hides_reply_texts_pasted_headers_and_sender_searches(tmp_path):
    """A failed recipient's reply quotes its address; pasted headers name people; a search
    for a hashed sender finds nothing: none of them shows a person when redacted."""
    generate(tmp_path / "logs", servers=2, days=1, messages=200, seed=11)
    assert ingest([tmp_path / "logs"], tmp_path / "store").exit_code == 0
    truth = [json.loads(x) for x in (tmp_path / "logs" / "truth.jsonl").open(encoding="utf-8")]
    failed = [t for t in truth if t["verdict"] == "failed" and t["reply"]]
    t = next(t for t in failed if t["recipient"].split("@")[0] in t["reply"])
    header = (
        f"From: Thomas Larsen <{t['sender']}>\nTo: <{t['recipient']}>\n"
        f"Subject: Salary review\nMessage-ID: {t['message_id']}\n"
        "Date: Mon, 2 Mar 2026 10:00:00 +0000\n\n"
    )
    with serving(tmp_path / "store", env=NO_TOKEN) as url:
        plain = httpx.get(url + "/trace", params={"id": t["message_id"]}).text
    assert t["recipient"] in plain and "Messages of" in plain  # what redaction must hide
    with serving(tmp_path / "store", "--redact", env=NO_TOKEN) as url:
        traced = httpx.get(url + "/trace", params={"id": t["message_id"]}).text
        form = httpx.get(url + "/headers").text
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', form)[1]
        pasted = httpx.post(url + "/headers", data={"text": header, "csrf": csrf})
    assert pasted.status_code == 200
    local = t["recipient"].split("@")[0]
    assert local not in traced and "Messages of" not in traced
    assert "failed" in traced
    for gone in (local, t["sender"].split("@")[0], "Salary review", "Thomas Larsen"):
        assert gone not in pasted.text, gone
    assert "(hidden)" in pasted.text


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("550 5.1.1 <sean.o'brien@fabrikam.com>: unknown", "sean.o'brien"),
        ('550 5.1.1 <"john doe"@fabrikam.com>: unknown', "john doe"),
        ("jane.roe@[192.0.2.55] unknown", "jane.roe"),
        ("user 'bob@x.example' unknown", "bob"),
        # Exchange's 5.1.10 reply names the address without brackets; SMTPUTF8 local parts
        ("550 5.1.10 Recipient müller.jürgen@proseware.com not found", "müller"),
        ("550 5.1.10 Recipient josé.garcía@proseware.com not found", "josé"),
        ("550 5.1.1 山田太郎@example.jp unknown", "山田太郎"),
        ("550 5.1.1 ana@bücher.example unknown", "ana"),
        # combining marks (Devanagari, Thai, decomposed accents) and joiners are of the name
        ("550 5.1.10 Recipient प्रिया@example.in not found", "प्रिया"),
        ("550 5.1.10 Recipient ชื่อ@example.co.th not found", "ชื่อ"),
        ("550 5.1.10 Recipient mu\u0308ller@example.de not found", "mu\u0308ller"),
        ("550 5.1.10 Recipient user\u200d@x.com not found", "user\u200d"),
        ("550 5.1.10 Recipient Ivan\u00b7@x.com not found", "Ivan"),
    ],
)
def test_redaction_finds_every_form_of_address_in_text(text, hidden):
    from loganalyzer.report.redact import redact_text

    out = redact_text(text, b"key")
    assert hidden not in out and "@" in out
    assert out == redact_text(text, b"key")  # the same hash each time


PROTOCOL_HEADER = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n"
    "#Log-type: SMTP Receive Protocol Log\r\n#Date: 2026-03-02T10:00:00.000Z\r\n"
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
    "remote-endpoint,event,data,context\r\n"
)
#: Paths no address pattern reads: each must still be hidden, wherever a line repeats it.
MALFORMED = ["a<svg onload=x>@b", '"odd name"@example.com', "jane doe@example.com", "no-at-all"]


def _conversation_store(tmp_path):
    """One message received over SMTP whose protocol log gives malformed paths."""
    said = [(">", "220 EX02 Microsoft ESMTP MAIL Service ready"), ("<", "EHLO EX01.contoso.com")]
    said += [("<", f"MAIL FROM:<{MALFORMED[0]}> SIZE=7001")]
    said += [(">", f"250 2.1.0 <{MALFORMED[0]}>... Sender OK")]
    for path in MALFORMED[1:]:
        said += [("<", f"RCPT TO:<{path}>"), (">", f"550 5.1.1 <{path}>: Recipient rejected")]
    said += [("<", "RCPT TO:unbracketed name@example.com NOTIFY=NEVER")]
    said += [("<", "RCPT TO:<bob@contoso.com>"), (">", "250 2.1.5 Recipient OK")]
    lines = "".join(
        f"2026-03-02T10:00:00.{j:03d}Z,EX02\\Default EX02,08DA9A4C1D2E0001,{j},10.0.0.6:25,"
        f"10.0.0.5:1234,{way},{_csv_field(text)},\r\n"
        for j, (way, text) in enumerate(said)
    )
    proto = tmp_path / "EX02" / "ProtocolLog" / "SmtpReceive" / "RECV2026030210-1.LOG"
    proto.parent.mkdir(parents=True)
    proto.write_text(PROTOCOL_HEADER + lines, encoding="utf-8")
    write_log(tmp_path / "EX02" / "MSGTRK2026030210-1.LOG", [row(1)])
    assert ingest([tmp_path / "EX02"], tmp_path / "store").exit_code == 0
    return tmp_path / "store"


def _csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if re.search(r'[",]', value) else value


def test_redact_hides_malformed_paths_in_the_smtp_conversation(tmp_path):
    """A path no address pattern reads was shown as written (escaped) on the trace page."""
    store = _conversation_store(tmp_path)
    with serving(store, env=NO_TOKEN) as url:
        plain = html.unescape(httpx.get(url + "/trace", params={"id": "<msg1@contoso.com>"}).text)
    with serving(store, "--redact", env=NO_TOKEN) as url:
        page = httpx.get(url + "/trace", params={"id": "<msg1@contoso.com>"}).text
    shown = html.unescape(page)
    assert "RCPT TO:" in shown and "Recipient rejected" in shown  # the conversation is there
    for gone in [*MALFORMED, "svg onload", "odd name", "jane", "unbracketed"]:
        assert gone in plain, gone  # what redaction must hide
        assert gone not in shown and html.escape(gone) not in page, gone
    # a path keeps its hash wherever it is repeated: the reply echoes the command's
    sender = re.search(r"MAIL FROM:<([0-9a-f]{10}@b)> SIZE=7001", shown)
    assert sender and f"250 2.1.0 <{sender[1]}>... Sender OK" in shown


@pytest.mark.parametrize(
    ("text", "said", "shown"),
    [
        # a malformed path: hashed whole, a real domain kept
        ("MAIL FROM:<a<svg onload=x>@b> SIZE=1", (), r"MAIL FROM:<[0-9a-f]{10}@b> SIZE=1"),
        ("RCPT TO:<tom@[bad literal]>", (), r"RCPT TO:<[0-9a-f]{10}>"),
        ("RCPT TO:<>", (), r"RCPT TO:<>"),
        ("MAIL +FROM:<jane doe@x.example>", (), r"MAIL \+FROM:<[0-9a-f]{10}@x.example>"),
        (
            "RCPT TO:<b@x.example> ORCPT=rfc822;bob@x.example",
            (),
            r"RCPT TO:<[0-9a-f]{10}@x.example> ORCPT=rfc822;[0-9a-f]{10}@x.example",
        ),
        # an echoed path without "@" is known from the command; a longer address is not cut
        ("550 5.1.1 <no-at-all>: unknown", ("no-at-all",), r"550 5.1.1 <[0-9a-f]{10}>: unknown"),
        (
            "550 5.1.1 bob@x.example unknown",
            ("b@x.example",),
            r"550 5.1.1 [0-9a-f]{10}@x.example unknown",
        ),
    ],
)
def test_redaction_hides_a_path_whatever_its_shape(text, said, shown):
    from loganalyzer.report.redact import redact_text

    out = redact_text(text, b"key", frozenset(said))
    assert re.fullmatch(shown, out), out


def test_an_address_after_auth_hashes_as_in_the_path():
    """MAIL FROM's AUTH=tim@x hashed "AUTH=tim" (a second hash for one address on the page)."""
    from loganalyzer.report.redact import redact_conversation

    line = "MAIL FROM:<tim.fischer@fabrikam.com> AUTH=Tim.Fischer@fabrikam.com SIZE=10"
    [out] = redact_conversation([line], b"key")
    m = re.fullmatch(
        r"MAIL FROM:<([0-9a-f]{10})@fabrikam.com> AUTH=([0-9a-f]{10})@fabrikam.com SIZE=10", out
    )
    assert m and m[1] == m[2], out


def test_served_on_every_address_the_link_names_the_machine(store):
    """--host 0.0.0.0 printed http://0.0.0.0:PORT/?token=..., a link that works nowhere but
    on the machine itself; it names the machine."""
    import os
    import socket
    import subprocess

    from conftest import LOGANALYZER

    port = free_port()
    proc = subprocess.Popen(
        [LOGANALYZER, "serve", "--store", str(store), "--host", "0.0.0.0", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOGANALYZER_WEB_TOKEN": TOKEN},
    )
    try:
        line = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert f"open this link once: http://{socket.getfqdn()}:{port}/?token=" in line, line
    assert "0.0.0.0" not in line


#: Header samples: bounces (their code-table rows are shared, frozen values) and blocks whose
#: To names a person.
PASTED = [
    *sorted((CORPUS / "headers").glob("*.txt")),
    *sorted((ROOT / "tests" / "headers").glob("*.eml")),
]


def _people(analysis: dict) -> set[str]:
    """The names and local parts of the addresses a header analysis shows, Message-IDs aside."""
    fields = [analysis["from"], analysis["to"], (analysis["original"] or {}).get("from")]
    fields += [b["recipient"] for b in analysis["bounce"]]
    for hops in (analysis["hops"], (analysis["original"] or {}).get("hops", [])):
        fields += [h["for"] for h in hops]
    out = set()
    for name, address in getaddresses([f for f in fields if f]):
        out |= {name, address.rpartition("@")[0]}
    return out - {""}


def test_redact_hides_every_address_of_a_pasted_header(store):
    """Every sample, bounces too, gives its analysis page with no person's name or address."""
    from loganalyzer import analyze_headers

    with serving(store, "--redact", env=NO_TOKEN) as url:
        form = httpx.get(url + "/headers").text
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', form)[1]
        for path in PASTED:
            people = _people(analyze_headers(path.read_bytes()).to_dict())
            r = httpx.post(url + "/headers", data={"csrf": csrf}, files={"file": path.read_bytes()})
            assert r.status_code == 200, (path.name, r.text[-300:])
            shown = html.unescape(r.text)
            assert "addresses redacted" in shown, path.name
            assert not {p for p in people if p in shown}, path.name
    assert "Traceback" not in url.stderr


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Thomas Larsen <t.larsen@contoso.com>", "(hidden) <H@contoso.com>"),
        ("<t.larsen@contoso.com>", "<H@contoso.com>"),
        ("t.larsen@contoso.com", "H@contoso.com"),
        (
            '"Larsen, Thomas" <t.larsen@contoso.com>, b@fabrikam.com',
            "(hidden) <H@contoso.com>, H@fabrikam.com",
        ),
    ],
)
def test_an_address_field_is_redacted_address_by_address(value, shown):
    from loganalyzer.web.data import redact_value

    out = redact_value("to", value, b"key")
    assert re.sub(r"\b[0-9a-f]{10}@", "H@", out) == shown


def test_the_report_without_a_day_is_of_the_stores_newest_day(store):
    """The Reports form offers the store's last day; a /report without one was of yesterday
    by the wall clock (an empty report of megabytes)."""
    with serving(store, env=NO_TOKEN) as url:
        reports = httpx.get(url + "/reports", timeout=60).text
        last = re.search(r'name="date" value="([\d-]+)"', reports)[1]
        r = httpx.get(url + "/report", timeout=300)
    assert r.status_code == 200
    assert f"<title>Mail flow {last}</title>" in r.text
