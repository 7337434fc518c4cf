"""What a hub does with a message: shadow copy, RECEIVE, AGENTINFO and the categorizer.

The categorizer's rows: EXPAND (lists, nested ones too), REDIRECT (forwarded mailboxes),
INITMESSAGECREATED (moderated lists), SUPPRESSED (automatic replies to the outside), FAIL for
unknown recipients with its DSN and NDR; then delivery (delivery.py). Also the message-level
fates DROP (a transport rule) and POISONMESSAGE, and the moderators' decisions.
"""

from __future__ import annotations

from loganalyzer.synth.clock import iso
from loganalyzer.synth.delivery import Delivery
from loganalyzer.synth.model import Message, Rcpt
from loganalyzer.synth.org import ARBITRATION, POSTMASTER, Server, network_guid
from loganalyzer.synth.tracking import AGENT_DELETED, MODERATOR_REJECTED, RECIP_NOT_FOUND

MINUTE = 60_000


class Hub(Delivery):
    """The transport service's part of a journey."""

    def hub_receive(
        self,
        m: Message,
        h: Server,
        t: int,
        rcpts: list[Rcpt],
        *,
        client_ip: str,
        client_host: str,
        sid: str,
        ts: int,
        connector: str,
        orig_client: str = "",
        orig_server: str = "",
        custom: str = "",
    ) -> None:
        """HAREDIRECT (shadow copy on another DAG member) and the hub's SMTP RECEIVE from the
        client `client_ip` (`client_host`) in session `sid` (started at `ts`) of `connector`."""
        others = [s for s in self.org.servers if s is not h]
        if others:
            shadow = self.rng.choice(others)
            ctx = (
                f"{shadow.fqdn} = 250 2.6.0 {m.mid} [InternalId={self.iid(shadow, 'hub')}, "
                f"Hostname={shadow.fqdn}] Queued mail for redundancy"
            )
            event = "HAREDIRECT"
        else:
            ctx, event = "No suitable shadow servers", "HAREDIRECTFAIL"
        th = t - self.rng.randint(3, 25)
        self.event(th, h, "MSGTRK", m, rcpts, "pass", source="SMTP", event=event, context=ctx)
        self.event(
            t,
            h,
            "MSGTRK",
            m,
            rcpts,
            "pass",
            source="SMTP",
            event="RECEIVE",
            client_ip=client_ip,
            client_host=client_host,
            server_ip=h.ip,
            context=f"{sid};{iso(ts)};0",
            connector=connector,
            info="0cA: ",
            orig_client=orig_client,
            orig_server=orig_server,
            custom=custom,
        )

    def categorize(self, m: Message, h: Server, t: int, rcpts: list[Rcpt]) -> None:
        """AGENTINFO, then the categorizer's rows and the deliveries they lead to."""
        r = self.rng.randint
        t += r(20, 400)
        self.event(
            t,
            h,
            "MSGTRK",
            m,
            rcpts,
            "pass",
            source="AGENT",
            event="AGENTINFO",
            client_host=h.name,
            server_host="",
            custom=f"S:AMA=SUM|action=p|error=|atch={r(0, 1)};S:CompCost=|ETR=0;"
            f"S:DeliveryPriority=Normal;S:OriginalFromAddress={m.return_path};"
            "S:AccountForest=contoso.com",
        )
        if m.fate == "poison":
            self._poison(m, h, t, rcpts)
            return
        if m.fate == "drop":
            self.event(
                t + r(1, 20),
                h,
                "MSGTRK",
                m,
                rcpts,
                "dropped",
                AGENT_DELETED,
                source="AGENT",
                event="DROP",
                context="Transport Rule Agent",
                statuses=[AGENT_DELETED] * len(rcpts),
            )
            return
        internal: dict[str, list[Rcpt]] = {}
        external: dict[str, list[Rcpt]] = {}
        unknown: list[Rcpt] = []
        t = self._resolve(m, h, t + r(5, 80), rcpts, internal, external, unknown)
        if unknown:
            t += r(1, 20)
            statuses = [RECIP_NOT_FOUND] * len(unknown)
            self.event(
                t,
                h,
                "MSGTRK",
                m,
                unknown,
                "failed",
                RECIP_NOT_FOUND,
                source="ROUTING",
                event="FAIL",
                statuses=statuses,
            )
            self.bounce(m, h, t + r(1, 20), unknown, statuses)
        for name, rs in internal.items():
            self.deliver_internal(m, h, self.org.server(name), rs, t + r(10, 500))
        for dom, rs in external.items():
            self.deliver_external(m, h, self.org.by_domain[dom], rs, t + r(50, 2000))

    def _resolve(
        self,
        m: Message,
        h: Server,
        t: int,
        rcpts: list[Rcpt],
        internal: dict,
        external: dict,
        unknown: list[Rcpt],
    ) -> int:
        for x in rcpts:
            t += self.rng.randint(0, 3)
            if x.kind == "mailbox":
                assert x.user is not None
                internal.setdefault(x.user.server.name, []).append(x)
            elif x.kind == "unknown":
                unknown.append(x)
            elif x.kind == "external" and m.oof:
                self.event(t, h, "MSGTRK", m, [x], "dropped", source="ROUTING", event="SUPPRESSED")
            elif x.kind == "external":
                external.setdefault(x.address.split("@")[1], []).append(x)
            elif x.kind == "redirected":
                assert x.user is not None and x.user.forward_to is not None
                target = self.new_rcpt(x.user.forward_to, parent=x.address)
                x.target = target
                m.all.append(target)
                self.event(
                    t,
                    h,
                    "MSGTRK",
                    m,
                    [target],
                    "pass",
                    source="ROUTING",
                    event="REDIRECT",
                    related=x.address,
                )
                x.mark(t, h.name, "redirect")
                t = self._resolve(m, h, t, [target], internal, external, unknown)
            elif x.kind == "moderated":
                self.event(
                    t,
                    h,
                    "MSGTRK",
                    m,
                    [x],
                    "moderation",
                    source="APPROVAL",
                    event="INITMESSAGECREATED",
                    related=ARBITRATION,
                )
                td = t + self.rng.randint(10 * MINUTE, 120 * MINUTE)
                if x.decision != "await" and td < self.end - 30 * MINUTE:
                    self._moderate(m, x, td)
            else:
                members = [
                    self.new_rcpt(a, parent=x.address) for a in self.org.lists[x.address].members
                ]
                m.all.extend(members)
                self.event(
                    t,
                    h,
                    "MSGTRK",
                    m,
                    members,
                    "pass",
                    source="ROUTING",
                    event="EXPAND",
                    related=x.address,
                )
                x.mark(t, h.name, "expanded")
                t = self._resolve(m, h, t + 1, members, internal, external, unknown)
        return t

    def _poison(self, m: Message, h: Server, t: int, rcpts: list[Rcpt]) -> None:
        """The transport service crashes on the message twice; it goes to the poison queue."""
        r = self.rng.randint
        t += r(200, 3000) + r(60_000, 150_000)  # crash, restart, the message is loaded again
        self.event(t, h, "MSGTRK", m, rcpts, "pass", source="BOOTLOADER", event="LOAD")
        t += r(1_000, 20_000) + r(60_000, 150_000)  # crash again: quarantined at the restart
        self.event(
            t, h, "MSGTRK", m, rcpts, "quarantined", source="POISONMESSAGE", event="POISONMESSAGE"
        )

    def _moderate(self, m: Message, x: Rcpt, t: int) -> None:
        """The moderator's decision (MSGTRKMA on the arbitration mailbox's server)."""
        a = self.org.arbitration_db.server
        approve = x.decision == "approve"
        self.event(
            t,
            a,
            "MSGTRKMA",
            m,
            [x],
            "pass" if approve else "failed",
            "" if approve else MODERATOR_REJECTED,
            source="APPROVAL",
            event="MODERATORAPPROVE" if approve else "MODERATORREJECT",
            iid=self.iid(a, "ma"),
            statuses=None if approve else [MODERATOR_REJECTED],
            related=self.org.lists[x.address].moderators[0],
        )
        if not approve:
            self.bounce(m, a, t + self.rng.randint(50, 2000), [x], [MODERATOR_REJECTED])
            return
        x.kind = "list"  # the approved original is resubmitted from the arbitration mailbox
        self.resubmit_approved(m, a, t + self.rng.randint(2000, 20_000), x)

    def resubmit_approved(self, m: Message, a: Server, t: int, x: Rcpt) -> None:
        raise NotImplementedError  # origins.Engine sends it through Mailbox Transport Submission

    def bounce(
        self,
        m: Message,
        h: Server,
        t: int,
        failed: list[Rcpt],
        statuses: list[str],
    ) -> None:
        """The DSN row and the NDR's own journey back to the sender (none for `<>` senders)."""
        if m.return_path == "<>":
            return
        r = self.rng.randint
        ndr_mid = self.internal_mid(h)
        if h.name not in m.iids:
            m.iids[h.name] = self.iid(h, "hub")
        self.event(
            t,
            h,
            "MSGTRK",
            m,
            failed,
            "dsn",
            source="DSN",
            event="DSN",
            statuses=statuses,
            reference=ndr_mid,
        )
        for x in failed:
            failure = next(e for e in reversed(x.story) if e[2] == "failed")
            failure[4] = ndr_mid
        back = self.new_rcpt(m.return_path)
        if m.ndr_fails:
            back.remote = "reject550"
        ndr = Message(
            mid=ndr_mid,
            nid=network_guid(self.rng),
            sender=POSTMASTER,
            return_path="<>",
            subject=f"Undeliverable: {m.subject}",
            size=min(m.size, 262_144) + r(4000, 9000),
            direction="Originating",
            orig_time=t,
            rcpts=[back],
            all=[back],
            reference=m.mid,
            received_at=t,
        )
        ndr.iids[h.name] = self.iid(h, "hub")
        m.ndrs.append(ndr)
        if back.user is not None:
            self.deliver_internal(ndr, h, back.user.server, [back], t + r(20, 400))
        else:
            dom = self.org.by_domain[back.address.split("@")[1]]
            self.deliver_external(ndr, h, dom, [back], t + r(100, 2000))
