"""Delivery attempts from a hub: to the mailbox servers of the DAG and to Internet MX hosts.

Every hop to a mailbox server is a SEND over the Intra-Organization SMTP Send Connector (also
when the database is on the hub's own server), then RECEIVE and DELIVER in that server's
MSGTRKMD. Internet mail leaves over `Internet Send Connector`: SEND with the MX's reply, or
DEFER and retries, FAIL for a 5xx, FAIL with `550 4.4.7 QUEUE.Expired` after `EXPIRY_MS`.
"""

from __future__ import annotations

from collections.abc import Callable

from loganalyzer.synth.clock import HOUR_MS, iso
from loganalyzer.synth.engine import INTERNET, INTRA, RCPT_OK, EngineBase
from loganalyzer.synth.model import Message, Rcpt
from loganalyzer.synth.names import MX_SOFTWARE
from loganalyzer.synth.nexthops import NextHops
from loganalyzer.synth.org import ExternalDomain, Server
from loganalyzer.synth.protocol import (
    Session,
    connect_failure,
    endpoint,
    internet_send,
    mail_from,
    play,
    refused,
)
from loganalyzer.synth.tracking import (
    ACCOUNT_FOREST,
    MTD_BUSY,
    QUEUE_EXPIRED,
    SERVICE_UNAVAILABLE,
    conn_failure,
    greylisted,
    led,
    perf,
    policy_block,
    responded,
    user_unknown,
    winsock_failure,
)

SAFETY_MS = 300_000  # no attempt starts this close to the end of the logs
EXPIRY_MS = 6 * HOUR_MS  # the organisation's MessageExpirationTimeout


class Delivery(EngineBase):
    """Hub-side delivery: SEND, DEFER, FAIL and the mailbox server's RECEIVE and DELIVER."""

    bounce: Callable[[Message, Server, int, list[Rcpt], list[str]], None]
    #: Connectivity logs and named next-hop failures (synth's `agent_logs`), else None.
    next_hops: NextHops | None = None

    def deliver_internal(self, m: Message, h: Server, d: Server, rs: list[Rcpt], t: int) -> None:
        """Hand `rs` (mailboxes on `d`) to d's Mailbox Transport Delivery, retrying 432s."""
        r = self.rng.randint
        connector = f"{d.name}\\Default Mailbox Delivery {d.name}"
        pending = rs
        while pending:
            if t > self.end - SAFETY_MS:
                return
            accepted = [x for x in pending if not x.busy]
            busy = [x for x in pending if x.busy]
            mtd_iid = self.iid(d, "mtd") if accepted else ""
            final = self.queued(m, mtd_iid, d)
            pairs = [(x.address, MTD_BUSY if x.busy else RCPT_OK) for x in pending]
            marks, ssid, rsid, ts, te = self.hop(
                t, h, d, 475, INTRA, connector, m, pairs, final, m.iids[h.name]
            )
            if busy:
                td = marks["rcpt"] + r(1, 5)
                status = led(MTD_BUSY, d.fqdn, d.ip, td)
                self.event(
                    td,
                    h,
                    "MSGTRK",
                    m,
                    busy,
                    "deferred",
                    MTD_BUSY,
                    source="SMTP",
                    event="DEFER",
                    context=ssid,
                    connector=INTRA,
                    client_ip=h.ip,
                    client_host=h.fqdn,
                    server_ip=d.ip,
                    server_host=d.fqdn,
                    statuses=[status] * len(busy),
                    info=iso(m.orig_time),
                )
                for x in busy:
                    x.busy -= 1
                    x.busy_on = d.name
            if accepted:
                tc = marks["commit"]
                self.event(
                    tc,
                    d,
                    "MSGTRKMD",
                    m,
                    accepted,
                    "pass",
                    source="SMTP",
                    event="RECEIVE",
                    client_ip=h.ip,
                    client_host=h.fqdn,
                    server_ip=d.ip,
                    context=f"{rsid};{iso(ts)};0",
                    connector=connector,
                    iid=mtd_iid,
                    info="0cA: ",
                    custom=f"S:FromEntity=Hosted;{ACCOUNT_FOREST}",
                )
                tsend = tc + r(1, 4)
                self.event(
                    tsend,
                    h,
                    "MSGTRK",
                    m,
                    accepted,
                    "handoff",
                    source="SMTP",
                    event="SEND",
                    client_ip=h.ip,
                    client_host=h.fqdn,
                    server_ip=d.ip,
                    server_host=d.fqdn,
                    connector=INTRA,
                    context=f"{ssid};{final};ClientSubmitTime:{self.submit_time(m)}",
                    statuses=[RCPT_OK] * len(accepted),
                    info=f"{iso(m.orig_time)};{perf(self.rng, h.fqdn)}",
                    custom=f"S:E2ELatency={(tsend - m.orig_time) / 1000:.3f};"
                    f"S:MsgRecipCount={len(accepted)};S:IncludeInSla=True;"
                    f"S:IsSmtpResponseFromExternalServer=False;{ACCOUNT_FOREST}",
                )
                self._store(m, h, d, accepted, tc, mtd_iid)
            pending = busy
            t = te + r(60_000, 300_000)

    def _store(self, m: Message, h: Server, d: Server, rs: list[Rcpt], tc: int, iid: str) -> None:
        """DELIVER per database; a copy lost in a failover comes back through Safety Net."""
        r = self.rng.randint
        lost = [x for x in rs if x.resubmit and tc + 25 * 60_000 < self.end - SAFETY_MS]
        by_db: dict[str, list[Rcpt]] = {}
        for x in rs:
            if x in lost:
                x.resubmit = False
            else:
                assert x.user is not None
                by_db.setdefault(x.user.db.name, []).append(x)
        t = tc + r(20, 300)
        for db_name, xs in by_db.items():
            assert xs[0].user is not None
            self.event(
                t,
                d,
                "MSGTRKMD",
                m,
                xs,
                "delivered",
                source="STOREDRIVER",
                event="DELIVER",
                client_ip=h.ip,
                client_host=h.fqdn,
                server_ip=d.ip,
                iid=iid,
                info=f"{iso(m.orig_time)};{perf(self.rng, d.fqdn, 'DEL')}",
                custom=f"S:MailboxDatabaseName={db_name};S:Mailboxes="
                f"{xs[0].user.mailbox_guid};S:DatabaseHealth=-1;S:E2ELatency="
                f"{(t - m.orig_time) / 1000:.3f};S:ToEntity=Hosted;{ACCOUNT_FOREST}",
            )
            t += r(1, 30)
        if lost:
            t = tc + r(5 * 60_000, 20 * 60_000)
            self.event(t, h, "MSGTRK", m, lost, "pass", source="SAFETYNET", event="RESUBMIT")
            self.deliver_internal(m, h, d, lost, t + r(500, 5000))

    def deliver_external(
        self,
        m: Message,
        h: Server,
        dom: ExternalDomain,
        rs: list[Rcpt],
        t: int,
    ) -> None:
        """Send `rs` (addresses of `dom`) to its MX: retries, greylisting, rejections, expiry."""
        r = self.rng.randint
        peer = dict(
            client_ip=h.ip,
            client_host=h.fqdn,
            server_ip=dom.mx_ip,
            server_host=dom.mx_host,
            connector=INTERNET,
            info=iso(m.orig_time),
        )
        first, last_end, last_error, attempt = t, t, "", 0
        pending = rs
        while pending:
            if t - first >= EXPIRY_MS:
                tf = max(first + EXPIRY_MS, last_end) + r(100, 5000)
                if tf > self.end - SAFETY_MS:
                    return
                statuses = [led(QUEUE_EXPIRED, dom.mx_host, dom.mx_ip, last_end, last_error)]
                statuses *= len(pending)
                self.event(
                    tf,
                    h,
                    "MSGTRK",
                    m,
                    pending,
                    "failed",
                    QUEUE_EXPIRED,
                    source="QUEUE",
                    event="FAIL",
                    statuses=statuses,
                    **peer,
                )
                self.bounce(m, h, tf + r(1, 50), pending, statuses)
                return
            if t > self.end - SAFETY_MS:
                return
            ssid, p = self.sid(h), self.port()
            send = Session(
                self.out, h.name, "SEND", INTERNET, ssid, endpoint(h.ip, p), endpoint(dom.mx_ip, 25)
            )
            hops = self.next_hops
            down = dom.name in m.down and (not m.down_until or t < m.down_until)
            if down or attempt < m.conn_defers:
                if hops is not None:  # the next hop fails in a named way
                    ops, text = hops.failure(m, dom)
                elif down:  # the MX does not answer
                    ops = connect_failure(winsock_failure(dom.name, dom.mx_ip))
                    text = conn_failure(dom.mx_ip)
                else:  # the MX turns us away for a while
                    ops = refused(dom.mx_host, SERVICE_UNAVAILABLE)
                    text = responded(dom.mx_ip)
                te, _ = play(t, ops, None, send)
                if hops is not None:
                    hops.log(self.out, t, te, h, dom, ssid, m, len(pending), m.size)
                td = te + r(1, 5)
                self.event(
                    td,
                    h,
                    "MSGTRK",
                    m,
                    pending,
                    "deferred",
                    text,
                    source="SMTP",
                    event="DEFER",
                    context=ssid,
                    statuses=[led(text, dom.mx_host, dom.mx_ip, te)] * len(pending),
                    **peer,
                )
                last_error, last_end, attempt = text, te, attempt + 1
                t = te + r(14 * 60_000, 16 * 60_000)
                continue
            te, pending = self._attempt(m, h, dom, pending, t, send, ssid, peer)
            if hops is not None:
                hops.log(self.out, t, te, h, dom, ssid, None, 1, m.size)
            last_end, attempt = te, attempt + 1
            t = te + r(5 * 60_000, 15 * 60_000)

    def _attempt(
        self,
        m: Message,
        h: Server,
        dom: ExternalDomain,
        pending: list[Rcpt],
        t: int,
        send: Session,
        ssid: str,
        peer: dict,
    ) -> tuple[int, list[Rcpt]]:
        """One SMTP session with the MX; returns its end and the greylisted recipients."""
        r = self.rng.randint
        replies = [self._reply(x) for x in pending]
        greeting, template = MX_SOFTWARE[dom.software]
        final = template.format(
            qid=f"{self.rng.getrandbits(44):X}",
            epoch=t // 1000,
            mid=m.mid,
            iid=r(10**12, 9 * 10**12),
            host=dom.mx_host.upper(),
        )
        ops = internet_send(
            self.rng,
            t,
            mx_host=dom.mx_host,
            greeting=greeting,
            mail=mail_from(m.return_path, m.size),
            rcpts=[(x.address, rep) for x, rep in zip(pending, replies, strict=True)],
            final=final,
            record_id=m.iids[h.name],
            mid=m.mid,
        )
        te, marks = play(t, ops, None, send)
        pairs = list(zip(pending, replies, strict=True))
        ok = [x for x, rep in pairs if rep.startswith("250")]
        grey = [x for x, rep in pairs if rep.startswith("451")]
        bad = [(x, rep) for x, rep in pairs if rep.startswith("5")]
        if ok:
            tsend = marks["commit"] + r(1, 5)
            self.event(
                tsend,
                h,
                "MSGTRK",
                m,
                ok,
                "sent_external",
                final,
                source="SMTP",
                event="SEND",
                statuses=[final] * len(ok),
                **peer
                | dict(
                    context=f"{ssid};{final};ClientSubmitTime:{self.submit_time(m)}",
                    info=f"{iso(m.orig_time)};{perf(self.rng, h.fqdn)}",
                    custom=f"S:E2ELatency={(tsend - m.orig_time) / 1000:.3f};"
                    f"S:ExternalSendLatency={(tsend - t) / 1000:.3f};S:ToEntity=Internet;"
                    f"S:MsgRecipCount={len(ok)};S:IncludeInSla=True;"
                    f"S:IsSmtpResponseFromExternalServer=True;{ACCOUNT_FOREST}",
                ),
            )
        tf = te + r(1, 5)
        if bad:
            statuses = [
                led(rep, dom.mx_host, dom.mx_ip) if rep.startswith("550") else rep for _, rep in bad
            ]
            self.trk(
                tf,
                h,
                "MSGTRK",
                m,
                source="SMTP",
                event="FAIL",
                context=ssid,
                iid=m.iids[h.name],
                rcpts=[x.address for x, _ in bad],
                statuses=statuses,
                custom=ACCOUNT_FOREST,
                **peer,
            )
            for x, rep in bad:
                x.mark(tf, h.name, "failed", rep)
            self.bounce(m, h, tf + r(1, 50), [x for x, _ in bad], statuses)
        if grey:
            texts = [greylisted(x.address) for x in grey]
            self.trk(
                tf,
                h,
                "MSGTRK",
                m,
                source="SMTP",
                event="DEFER",
                context=ssid,
                iid=m.iids[h.name],
                rcpts=[x.address for x in grey],
                statuses=texts,
                custom=ACCOUNT_FOREST,
                **peer,
            )
            for x, text in zip(grey, texts, strict=True):
                x.mark(tf, h.name, "deferred", text)
                x.remote = "ok"
        return te, grey

    @staticmethod
    def _reply(x: Rcpt) -> str:
        if x.remote == "greylist":
            return greylisted(x.address)
        if x.remote == "reject550":
            return user_unknown(x.address)
        if x.remote == "reject554":
            return policy_block(x.address)
        return "250 2.1.5 Ok"
