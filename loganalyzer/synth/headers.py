"""Header blocks of messages the generator delivered: `OUT/headers/<n>.eml`.

Written after the logs, from the logs: `generate(..., headers=N)` reads `truth.jsonl` and the
tracking and protocol logs it wrote, picks N messages delivered to a mailbox (two Internet
messages to one from inside) and a few NDRs delivered to their senders, and writes for each the
header block a mailbox would show. It draws from its own random numbers, so the logs are the
same bytes with or without headers.

Each `Received:` time comes from the logs (in the servers' local time, like Exchange, whole
seconds): the mailbox server's hop = its RECEIVE row (MSGTRKMD); the hub's = the hub's SMTP
RECEIVE row; the frontend's = the client's DATA command in the frontend's receive protocol log
(the frontend writes no tracking row); the relay's = the DATA line of its W3C log (the truth's
`received_at`); a mailbox submission (`with mapi`) = the STOREDRIVER RECEIVE row (MSGTRKMS).
TLS is stated where the protocol logs show STARTTLS or X-ANONYMOUSTLS. `Message-ID`,
`X-MS-Exchange-Organization-Network-Message-Id`, `Date` (the origination time in the
message-info column) and the recipients are those of the tracking rows. Authentication-Results,
X-MS-Exchange-Organization-SCL and X-Forefront-Antispam-Report are invented for Internet mail
(drawn from a few plausible profiles); mail from inside carries SCL -1 and no Forefront report.
An NDR holds a text part, a `message/delivery-status` part (Status and Diagnostic-Code are the
truth's `enhanced_status` and `reply`) and the original's headers as `text/rfc822-headers`.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections import defaultdict
from email.header import Header
from pathlib import Path

from loganalyzer.synth.clock import HOUR_MS, banner_date, hour_stamp
from loganalyzer.synth.org import ACCEPTED_DOMAINS, POSTMASTER, Org, Rng, Server

BUILD = "15.1.2507.35"  # the tracking logs' #Version 15.01.2507.035
MAPI_BUILD = "15.01.2507.035"
CIPHER = "(version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384_P384)"
_PROXY_HOP = re.compile(r"S:ProxyHop1=([^(;]+)\(([^);]+)\)")
DKIM = {
    "ok": "pass (signature was verified) header.d={dom}",
    "none": "none (message not signed) header.d=none",
    "bad": "fail (body hash did not verify) header.d={dom}",
}
#: Authentication and spam verdicts of Internet mail:
#: weight, spf, dkim, dmarc, compauth with reason, SCL, SFV, CAT, BCL.
PROFILES = (
    (6, "pass", "ok", "pass", "pass reason=100", 1, "NSPM", "NONE", 0),
    (2, "pass", "none", "bestguesspass", "pass reason=109", 1, "NSPM", "NONE", 0),
    (1, "none", "none", "none", "softpass reason=201", 1, "NSPM", "NONE", 0),
    (1, "pass", "ok", "pass", "pass reason=100", 6, "SPM", "BULK", 7),
    (1, "softfail", "bad", "fail", "fail reason=001", 5, "SPM", "SPOOF", 0),
)
SPF_WORDS = {"pass": "Pass", "none": "None", "softfail": "SoftFail"}


def _ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def _fold(name: str, value: str) -> str:
    """`Name: value` folded at spaces to about 78 characters (continuations start with a space)."""
    words, lines, cur = value.split(" "), [], f"{name}:"
    for w in words:
        if len(cur) + 1 + len(w) > 78 and cur.strip() and not cur.endswith(":"):
            lines.append(cur)
            cur = f" {w}"
        else:
            cur += f" {w}"
    return "\r\n".join([*lines, cur])


def _encoded(text: str) -> str:
    return text if text.isascii() else Header(text, "utf-8").encode(maxlinelen=998)


def _person(address: str, org: Org) -> str:
    user = org.by_address.get(address)
    local = address.split("@")[0]
    name = user.display if user else " ".join(p.capitalize() for p in re.split(r"[._]", local))
    return f"{_encoded(name)} <{address}>"


class Logs:
    """The generator's logs, read back: tracking rows by Message-ID, receive sessions."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._files: dict[tuple[str, str, str], list[dict]] = {}

    def _read(self, path: Path) -> list[dict]:
        lines = path.read_bytes().decode("utf-8-sig").split("\r\n")
        fields = next(ln for ln in lines if ln.startswith("#Fields: "))[9:].split(",")
        return [
            dict(zip(fields, r, strict=False))
            for r in csv.reader(ln for ln in lines if ln and not ln.startswith("#"))
        ]

    def _series(self, server: str, folder: str, prefix: str, hour: str) -> list[dict]:
        key = (server, prefix, hour)
        if key not in self._files:
            rows = []
            for p in sorted((self.out / server / folder).glob(f"{prefix}*{hour}-*.LOG")):
                kind = re.match(r"[A-Z]+?(?=\d)", p.name)[0]
                for r in self._read(p):
                    r["_server"], r["_kind"] = server, kind
                    rows.append(r)
            self._files[key] = rows
        return self._files[key]

    def tracking(self, mids: set[str], hours: list[str]) -> dict[str, list[dict]]:
        servers = sorted(p.name for p in self.out.iterdir() if (p / "MessageTracking").is_dir())
        found: dict[str, list[dict]] = defaultdict(list)
        for server in servers:
            for hour in hours:
                for r in self._series(server, "MessageTracking", "MSGTRK", hour):
                    if r["message-id"] in mids:
                        found[r["message-id"]].append(r)
        for rows in found.values():
            rows.sort(key=lambda r: r["date-time"])
        return found

    def session(self, server: str, sid: str, t: int) -> list[dict]:
        """The receive protocol log lines of session `sid` on `server` around time `t`."""
        hours = sorted({hour_stamp(t - HOUR_MS), hour_stamp(t)})
        folder = "ProtocolLog/SmtpReceive"
        return [
            r
            for h in hours
            for r in self._series(server, folder, "RECV", h)
            if r["session-id"] == sid
        ]


def _row(rows: list[dict], **match) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def _received(frm: str, by: str, with_: str, t: int, extra: str = "") -> str:
    return _fold("Received", f"from {frm} by {by} with {with_}{extra}; {banner_date(t)}")


class Writer:
    """Builds the header blocks from the logs."""

    def __init__(self, out: Path, org: Org, seed: int) -> None:
        self.org, self.logs = org, Logs(out)
        self.rng = Rng(f"synth-headers-{seed}")
        self.by_fqdn: dict[str, Server] = {s.fqdn: s for s in org.servers}
        self.link_local: dict[str, str] = {}

    def _tls(self, server: str, sid: str, t: int) -> bool:
        return any(
            r["event"] == "<" and r["data"] in ("STARTTLS", "X-ANONYMOUSTLS")
            for r in self.logs.session(server, sid, t)
        )

    def _front(self, hub: dict, front: Server) -> tuple[int, bool] | None:
        """(DATA time, TLS) of the frontend session the hub's RECEIVE row was proxied from."""
        sid = hub["source-context"].split(";")[0]
        t = _ms(hub["date-time"])
        lines = self.logs.session(hub["_server"], sid, t)
        proxy = [r for r in lines if r["event"] == "<" and r["data"].startswith("XPROXYFROM ")]
        m = re.search(r"SID=([0-9A-F]+)", proxy[0]["data"]) if proxy else None
        lines = self.logs.session(front.name, m[1], t) if m else []
        data = [r for r in lines if r["event"] == "<" and r["data"] == "DATA"]
        if not data:
            return None
        tls = any(r["event"] == "<" and r["data"] == "STARTTLS" for r in lines)
        return _ms(data[-1]["date-time"]), tls

    def _mapi(self, server: Server) -> str:
        if server.name not in self.link_local:
            groups = ":".join(f"{self.rng.getrandbits(16):x}" for _ in range(4))
            self.link_local[server.name] = f"fe80::{groups}"
        return self.link_local[server.name]

    def chain(self, rows: list[dict], rcpt: str, until: int, truth: dict) -> list[str] | None:
        """The Received headers (newest first) of the message's path to `rcpt`'s mailbox."""
        mtd = [
            r
            for r in _row(rows, **{"event-id": "RECEIVE", "_kind": "MSGTRKMD"})
            if rcpt in r["recipient-address"].split(";") and _ms(r["date-time"]) <= until
        ]
        if not mtd or mtd[-1]["client-hostname"] not in self.by_fqdn:
            return None
        box, hub = mtd[-1], self.by_fqdn[mtd[-1]["client-hostname"]]
        mbx = self.org.server(box["_server"])
        hubs = _row(rows, **{"event-id": "RECEIVE", "_kind": "MSGTRK", "_server": hub.name})
        if hubs:
            upstream = self.upstream(rows, hubs[0], truth)
        else:  # an NDR starts on the hub that wrote it
            upstream = [] if truth["sender"] == POSTMASTER else None
        if upstream is None:
            return None
        t = _ms(box["date-time"])
        tls = self._tls(mbx.name, box["source-context"].split(";")[0], t)
        mailbox = _received(f"{hub.fqdn} ({hub.ip})", f"{mbx.fqdn} ({mbx.ip})", _smtp(tls), t)
        return [mailbox, *upstream]

    def upstream(self, rows: list[dict], h: dict, truth: dict) -> list[str] | None:
        """The Received headers up to the hub whose SMTP RECEIVE row is `h`, newest first."""
        hub, client = self.org.server(h["_server"]), self.by_fqdn.get(h["client-hostname"])
        if client is None:
            return None
        t = _ms(h["date-time"])
        tls = self._tls(hub.name, h["source-context"].split(";")[0], t)
        out = [_received(f"{client.fqdn} ({client.ip})", f"{hub.fqdn} ({hub.ip})", _smtp(tls), t)]
        proxy = _PROXY_HOP.search(h["custom-data"])
        if proxy:
            front = self.by_fqdn.get(proxy[1])
            seen = self._front(h, front) if front else None
            if front is None or seen is None:
                return None
            helo = re.search(r"S:ProxiedClientHostname=([^;]+)", h["custom-data"])
            ip, relay = h["original-client-ip"], self.org.relay
            via_relay = relay is not None and ip == relay.ip
            name = relay.fqdn if relay and via_relay else helo[1] if helo else f"[{ip}]"
            frm, by = f"{name} ({ip})", f"{front.fqdn} ({front.ip})"
            out.append(_received(frm, by, _smtp(seen[1]), seen[0], " via Frontend Transport"))
            if relay and via_relay:
                dom = self.org.by_domain[truth["sender"].split("@")[1]]
                frm = f"{dom.out_host} ([{dom.out_ip}])"
                t_relay = _ms(truth["received_at"])
                out.append(_received(frm, relay.fqdn, "Microsoft SMTPSVC(7.5.7601.17514)", t_relay))
            return out
        store = _row(rows, **{"event-id": "RECEIVE", "_kind": "MSGTRKMS"})
        if not store:
            return None
        s, ll = (
            self.org.server(store[0]["_server"]),
            self._mapi(self.org.server(store[0]["_server"])),
        )
        mapi = f"mapi id {MAPI_BUILD}"
        out.append(
            _received(
                f"{s.fqdn} ([{ll}])", f"{s.fqdn} ([{ll}%12])", mapi, _ms(store[0]["date-time"])
            )
        )
        return out

    def common(self, rows: list[dict], truth: dict) -> list[str]:
        """From, To, Subject, Date, Message-ID and the network message ID."""
        first = next(r for r in rows if r["event-id"] == "RECEIVE")
        to = [a for a in first["recipient-address"].split(";") if a]
        return [
            _fold("From", _person(truth["sender"], self.org)),
            _fold("To", ", ".join(f"<{a}>" for a in to)),
            _fold("Subject", _encoded(truth["subject"])),
            f"Date: {banner_date(_orig_time(rows, truth))}",
            f"Message-ID: {truth['message_id']}",
            "MIME-Version: 1.0",
            f"X-MS-Exchange-Organization-Network-Message-Id: {truth['network_message_id']}",
        ]

    def _internet(self, hub: dict, truth: dict, orig: int) -> tuple[list[str], list[str]]:
        """(the sender's own Received and the authentication headers, Exchange's headers)."""
        dom = truth["sender"].split("@")[1]
        ext, r = self.org.by_domain[dom], self.rng.randint
        client = f"[192.168.{r(0, 9)}.{r(2, 250)}]"
        sender_hop = _received(
            client, ext.out_host, "ESMTPSA", orig, f" id {self.rng.getrandbits(40):010X}"
        )
        spf, dkim, dmarc, compauth, scl, sfv, cat, bcl = self.rng.choices(
            [p[1:] for p in PROFILES], [p[0] for p in PROFILES]
        )[0]
        auth = (
            f"spf={spf} (sender IP is {ext.out_ip}) smtp.mailfrom={dom}; dkim="
            + DKIM[dkim].format(dom=dom)
            + f";dmarc={dmarc} action=none header.from={dom};compauth={compauth}"
        )
        front, srv = _PROXY_HOP.search(hub["custom-data"])[1], "BULK" if cat == "BULK" else ""
        says = "designates" if spf == "pass" else "does not designate"
        trace = [
            sender_hop,
            _fold("Authentication-Results", auth),
            _fold(
                "Received-SPF",
                f"{SPF_WORDS[spf]} ({front}: domain of {dom} {says} {ext.out_ip} as permitted"
                f" sender) receiver={front}; client-ip={ext.out_ip}; helo={ext.out_host};",
            ),
        ]
        exchange = [
            f"X-MS-Exchange-Organization-AuthSource: {front}",
            "X-MS-Exchange-Organization-AuthAs: Anonymous",
            "X-MS-Exchange-Organization-MessageDirectionality: Incoming",
            f"X-MS-Exchange-Organization-SCL: {scl}",
            _fold(
                "X-Forefront-Antispam-Report",
                f"CIP:{ext.out_ip};CTRY:;LANG:en;SCL:{scl};SRV:{srv};IPV:NLI;SFV:{sfv};"
                f"H:{ext.out_host};PTR:{ext.out_host};CAT:{cat};SFTY:;SFS:;DIR:INB;SFP:;",
            ),
            f"X-Microsoft-Antispam: BCL:{bcl};",
        ]
        return trace, exchange

    def delivered(self, rows: list[dict], truth: dict) -> str | None:
        """The header block of `truth`'s message as `truth['recipient']`'s mailbox shows it."""
        received = self.chain(rows, truth["recipient"], _ms(truth["at"]), truth)
        if received is None:
            return None
        hub = next(r for r in rows if r["event-id"] == "RECEIVE" and r["_kind"] == "MSGTRK")
        if "S:FromEntity=Internet" in hub["custom-data"]:
            trace, exchange = self._internet(hub, truth, _orig_time(rows, truth))
        else:
            source = self.org.server(hub["_server"]).fqdn
            trace, exchange = (
                [],
                [
                    f"X-MS-Exchange-Organization-AuthSource: {source}",
                    "X-MS-Exchange-Organization-AuthAs: Internal",
                    "X-MS-Exchange-Organization-MessageDirectionality: Originating",
                    "X-MS-Exchange-Organization-SCL: -1",
                ],
            )
        head = [
            *received,
            *trace,
            *self.common(rows, truth),
            'Content-Type: text/plain; charset="utf-8"',
        ]
        return "\r\n".join([*head, f"Return-Path: <{truth['sender']}>", *exchange, "", ""])

    def original_headers(self, rows: list[dict], truth: dict) -> str:
        """The bounced message's headers as the NDR quotes them."""
        hubs = _row(rows, **{"event-id": "RECEIVE", "_kind": "MSGTRK"})
        received = (self.upstream(rows, hubs[0], truth) if hubs else None) or []
        return "\r\n".join([*received, *self.common(rows, truth), ""])

    def ndr(
        self, rows: list[dict], orig_rows: list[dict], truth: dict, failed: list[dict]
    ) -> str | None:
        """The NDR `truth` (delivered to the original's sender) with the original's headers."""
        received = self.chain(rows, truth["recipient"], _ms(truth["at"]), truth)
        if received is None or not orig_rows:
            return None
        original = failed[0]
        gen = self.org.server(original["server"])
        boundary = f"{self.rng.getrandbits(128):032x}"
        quoted = self.original_headers(orig_rows, original)
        diag, blocks = [], []
        for f in failed:
            reply = f["reply"] or ""
            local = "RESOLVER." in reply or "QUEUE." in reply or "moderator" in reply
            diag.append(
                f["recipient"]
                + ("\r\n#" + reply + " ##" if local else f"\r\nRemote Server returned '{reply}'")
            )
            block = [
                f"Final-Recipient: rfc822;{f['recipient']}",
                "Action: failed",
                f"Status: {f['enhanced_status']}",
                f"Diagnostic-Code: smtp;{reply}",
            ]
            blocks.append("\r\n".join(block))
        text = (
            "Delivery has failed to these recipients or groups:\r\n\r\n"
            + "\r\n".join(f["recipient"] for f in failed)
            + "\r\nYour message couldn't be delivered. The diagnostic information below says"
            " why.\r\n\r\nDiagnostic information for administrators:\r\n\r\n"
            f"Generating server: {gen.fqdn}\r\n\r\n"
            + "\r\n\r\n".join(diag)
            + "\r\n\r\nOriginal message headers:\r\n\r\n"
            + quoted
        )
        hubs = _row(orig_rows, **{"event-id": "RECEIVE", "_kind": "MSGTRK"})
        arrival = _ms(hubs[0]["date-time"]) if hubs else _ms(original["received_at"])
        head = [
            *received,
            _fold("From", f"Microsoft Outlook <{POSTMASTER}>"),
            f"To: <{truth['recipient']}>",
            f"Date: {banner_date(_ms(truth['received_at']))}",
            _fold("Subject", _encoded(truth["subject"])),
            f"Message-ID: {truth['message_id']}",
            f"In-Reply-To: {original['message_id']}",
            f"References: {original['message_id']}",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
            "Content-Language: en-US",
            "X-MS-Exchange-Message-Is-Ndr:",
            "Auto-Submitted: auto-replied",
            f"X-MS-Exchange-Organization-Network-Message-Id: {truth['network_message_id']}",
            "X-MS-Exchange-Organization-SCL: -1",
            "X-MS-Exchange-Organization-AuthAs: Internal",
            "X-MS-Exchange-Organization-MessageDirectionality: Originating",
        ]
        parts = [
            ('text/plain; charset="utf-8"', text),
            (
                "message/delivery-status",
                f"Reporting-MTA: dns;{gen.fqdn}\r\nArrival-Date: {banner_date(arrival)}\r\n\r\n"
                + "\r\n\r\n".join(blocks)
                + "\r\n",
            ),
            ("text/rfc822-headers", quoted),
        ]
        body = "".join(
            f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n{content}\r\n" for kind, content in parts
        )
        return "\r\n".join(head) + "\r\n\r\n" + body + f"--{boundary}--\r\n"


def _smtp(tls: bool) -> str:
    return (
        f"Microsoft SMTP Server {CIPHER} id {BUILD}" if tls else f"Microsoft SMTP Server id {BUILD}"
    )


def _orig_time(rows: list[dict], truth: dict) -> int:
    """The origination time the rows' message-info starts with, else the truth's received_at."""
    for r in rows:
        head = r.get("message-info", "").split(";")[0]
        if re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", head):
            return _ms(head)
    return _ms(truth["received_at"])


def _hours(first: str, last: str) -> list[str]:
    t, end, out = _ms(first) - HOUR_MS, _ms(last), []
    while t <= end + HOUR_MS:
        out.append(hour_stamp(t))
        t += HOUR_MS
    return out


def _pick(truth: list[dict], rng: Rng, count: int) -> tuple[list[dict], list[tuple]]:
    """Candidates, about twice as many as needed, in truth order: delivered (two Internet
    messages to one from inside) and NDRs delivered to their sender (with their failures)."""
    first: dict[str, dict] = {}
    failures: dict[str, list[dict]] = defaultdict(list)
    for t in truth:
        if t["verdict"] == "delivered" and not t["expanded_from"]:
            first.setdefault(t["message_id"], t)
        if t["ndr_message_id"]:
            failures[t["ndr_message_id"]].append(t)
    ext = [t for t in first.values() if t["sender"].split("@")[1] not in ACCEPTED_DOMAINS]
    own = [t for t in first.values() if t["sender"] != POSTMASTER and t not in ext]
    ext = rng.sample(ext, min(len(ext), 2 * count))
    own = rng.sample(own, min(len(own), count))
    pool = [x for i in range(2 * count) for x in ext[2 * i : 2 * i + 2] + own[i : i + 1]]
    ndrs = [(t, failures[m]) for m, t in first.items() if t["sender"] == POSTMASTER and failures[m]]
    step = max(1, len(ndrs) // 6)
    return pool, ndrs[::step][:6]


def write_headers(out: Path, org: Org, count: int, seed: int) -> int:
    """Write `count` delivered messages' header blocks and a few NDRs (one for every three
    messages, at least one, at most three) as `out/headers/<n>.eml`; return the files written."""
    truth = [json.loads(x) for x in (out / "truth.jsonl").read_text("utf-8").splitlines()]
    w = Writer(out, org, seed)
    pool, ndrs = _pick(truth, w.rng, count)
    mids = {t["message_id"] for t in pool}
    mids |= {m for d, f in ndrs for m in (d["message_id"], f[0]["message_id"])}
    spans = [(t["received_at"], t["at"]) for t in pool]
    spans += [(f[0]["received_at"], d["at"]) for d, f in ndrs]
    rows = w.logs.tracking(mids, sorted({h for a, b in spans for h in _hours(a, b)}))
    texts: list[str] = []
    for t in pool:
        text = w.delivered(rows.get(t["message_id"], []), t) if len(texts) < count else None
        texts += [text] if text else []
    n_ndr, made = min(3, max(1, count // 3)), 0
    for d, failed in ndrs:
        orig = rows.get(failed[0]["message_id"], [])
        text = w.ndr(rows.get(d["message_id"], []), orig, d, failed) if made < n_ndr else None
        texts += [text] if text else []
        made += bool(text)
    (out / "headers").mkdir(exist_ok=True)
    for i, text in enumerate(texts, 1):
        (out / "headers" / f"{i}.eml").write_bytes(text.encode("utf-8"))
    return len(texts)
