"""How messages enter the organisation, and the password-guessing noise at the frontends.

Mail from a mailbox: NOTIFYMAPI, RECEIVE and SUBMIT (STOREDRIVER, MSGTRKMS) on the mailbox's
server, then SMTP to that server's own hub. Internet mail: (the IIS relay, then) the frontend
(port 25) of a random server, proxied to a hub: the server of the first mailbox recipient's
database most of the time. SMTP client submissions: port 587 with AUTH LOGIN, proxied to the hub
on the sender's mailbox server (port 465).
"""

from __future__ import annotations

from loganalyzer.synth.clock import iso
from loganalyzer.synth.engine import INTRA, PROXY, RCPT_OK
from loganalyzer.synth.iis import IisOutbound, inbound_session
from loganalyzer.synth.journeys import Hub
from loganalyzer.synth.model import Message, Rcpt
from loganalyzer.synth.org import ARBITRATION_GUID, ExternalDomain, Server
from loganalyzer.synth.protocol import (
    Session,
    auth_failure,
    endpoint,
    front_head,
    front_tail,
    mail_from,
    play,
)
from loganalyzer.synth.tracking import ACCOUNT_FOREST


class Engine(Hub):
    """Runs one message at a time; every row it writes is at or after the message's start."""

    def from_mailbox(self, m: Message, t: int, client_type: str = "MOMT") -> None:
        """Mail submitted from the sender's mailbox (Outlook, OWA, ActiveSync, an OOF)."""
        u = m.sender_user
        assert u is not None
        mclass = "IPM.Note.Rules.OofTemplate.Microsoft" if m.oof else "IPM.Note"
        self._store_submit(
            m, u.server, t, m.rcpts, u.db.guid, u.mailbox_guid, u.client_ip, mclass, client_type
        )

    def resubmit_approved(self, m: Message, a: Server, t: int, x: Rcpt) -> None:
        """The arbitration mailbox resubmits an approved message (no NOTIFYMAPI)."""
        self._store_submit(
            m,
            a,
            t,
            [x],
            self.org.arbitration_db.guid,
            ARBITRATION_GUID,
            a.ip,
            "IPM.Note",
            "Transport",
            notify=False,
        )

    def _store_submit(
        self,
        m: Message,
        srv: Server,
        t: int,
        rcpts: list[Rcpt],
        mdb: str,
        mailbox: str,
        client_ip: str,
        mclass: str,
        client_type: str,
        notify: bool = True,
    ) -> None:
        r = self.rng.randint
        ctx = (
            f"MDB:{mdb}, Mailbox:{mailbox}, Event:{r(10**7, 9 * 10**8)}, MessageClass:{mclass},"
            f" CreationTime:{iso(m.orig_time)}, ClientType:{client_type}"
        )
        entry = self.entry_id()
        sub = f"{iso(m.orig_time)};LSRV={srv.fqdn}:TOTAL-SUB=0.{r(10, 350):03d}|SA=0.0{r(10, 99)}"
        if notify:
            self.trk(
                t,
                srv,
                "MSGTRKMS",
                None,
                source="STOREDRIVER",
                event="NOTIFYMAPI",
                client_ip=client_ip,
                client_host=srv.name,
                context=ctx + ", SubmissionAssistant:MailboxTransportSubmissionEmailAssistant",
                sender=m.sender,
                info=sub + "|MTSS-PEN=0.000",
                custom=entry,
                traffic="",
            )
            t += r(15, 150)
        mts = self.iid(srv, "mts")
        kinds = ["To" if i == 0 or self.rng.random() < 0.7 else "Cc" for i in range(len(rcpts))]
        common = dict(client_ip=client_ip, client_host=srv.name, context=ctx, iid=mts)
        self.event(
            t,
            srv,
            "MSGTRKMS",
            m,
            rcpts,
            "pass",
            source="STOREDRIVER",
            event="RECEIVE",
            statuses=kinds,
            info="04I: ",
            custom=entry,
            **common,
        )
        if m.received_at is None:
            m.received_at = t
        t += r(5, 60)
        self.event(
            t,
            srv,
            "MSGTRKMS",
            m,
            rcpts,
            "pass",
            source="STOREDRIVER",
            event="SUBMIT",
            info=sub + f"|MTSS=0.0{r(10, 99)}(MTSSD=0.0{r(10, 99)}|MTSSP=0.001)",
            custom=entry + ";S:MailboxDatabaseGuid=" + mdb,
            **common,
        )
        # Mailbox Transport Submission hands the message to the Transport service of its server
        h = srv
        m.iids[h.name] = hub_iid = self.iid(h, "hub")
        connector = f"{h.name}\\Default {h.name}"
        marks, _, rsid, ts, _ = self.hop(
            t + r(2, 30),
            srv,
            h,
            2525,
            INTRA,
            connector,
            m,
            [(x.address, RCPT_OK) for x in rcpts],
            self.queued(m, hub_iid, h),
            mts,
        )
        tc = marks["commit"]
        self.hub_receive(
            m,
            h,
            tc,
            rcpts,
            client_ip=srv.ip,
            client_host=srv.fqdn,
            sid=rsid,
            ts=ts,
            connector=connector,
            orig_client=client_ip,
            custom=f"S:FromEntity=Hosted;{ACCOUNT_FOREST}",
        )
        self.categorize(m, h, tc, rcpts)

    def from_internet(self, m: Message, t: int, dom: ExternalDomain) -> None:
        """Internet mail: (the relay,) a frontend, the proxy to a hub."""
        rng, r, org = self.rng, self.rng.randint, self.org
        front = rng.choice(org.servers)
        first = next((x.user for x in m.rcpts if x.user is not None), None)
        hub = first.server if first is not None and rng.random() < 0.7 else rng.choice(org.servers)
        client_ip, helo = dom.out_ip, dom.out_host
        relay_peer = None
        if org.relay is not None:
            relay = org.relay
            data_t, t = inbound_session(
                self.out,
                rng,
                relay,
                t,
                client_ip=client_ip,
                helo=helo,
                mail=m.return_path,
                rcpts=[x.address for x in m.rcpts],
                mid=m.mid,
                size=m.size,
            )
            m.received_at = data_t
            for x in m.rcpts:
                x.mark(data_t, relay.name, "pass")
            t += r(200, 3000)
            relay_id = f"<{relay.name}{rng.getrandbits(40):010x}{r(1, 9999):08x}@{relay.fqdn}>"
            relay_peer = IisOutbound(self.out, relay, front.ip, relay_id)
            client_ip, helo = relay.ip, relay.fqdn
        self._front_in(m, t, front, hub, client_ip, helo, relay_peer, "")

    def from_client(self, m: Message, t: int) -> None:
        """An SMTP client submission (port 587, AUTH LOGIN) proxied to the sender's hub."""
        u = m.sender_user
        assert u is not None
        front = self.rng.choice(self.org.servers)
        self._front_in(m, t, front, u.server, u.client_ip, f"[{u.client_ip}]", None, u.address)

    def _front_in(
        self,
        m: Message,
        t: int,
        front: Server,
        hub: Server,
        client_ip: str,
        helo: str,
        relay_peer: IisOutbound | None,
        auth_user: str,
    ) -> None:
        r = self.rng.randint
        addrs = [x.address for x in m.rcpts]
        p, fsid = self.port(), self.sid(front)
        fconn = f"{front.name}\\{'Client' if auth_user else 'Default'} Frontend {front.name}"
        recv = Session(
            self.out,
            front.name,
            "RECV",
            fconn,
            fsid,
            endpoint(front.ip, 587 if auth_user else 25),
            endpoint(client_ip, p),
        )
        head = front_head(
            self.rng,
            t,
            helo=helo,
            client_ip=client_ip,
            tls=relay_peer is None and self.rng.random() < 0.85,
            mail=mail_from(m.return_path, m.size),
            rcpts=addrs,
            auth_user=auth_user,
            hub_fqdn=hub.fqdn,
        )
        t, _ = play(t, head, recv, relay_peer)
        m.iids[hub.name] = hub_iid = self.iid(hub, "hub")
        final = self.queued(m, hub_iid, hub)
        hconn = f"{hub.name}\\{'Client Proxy' if auth_user else 'Default'} {hub.name}"
        proxy_from = (
            f"XPROXYFROM SID={fsid} IP={client_ip} PORT={p} DOMAIN={helo} SEQNUM=0 "
            f"PERMS={'1' if auth_user else '0'} "
            f"AUTHSRC={'Authenticated' if auth_user else 'Anonymous'}"
        )
        marks, _, rsid, ts, _ = self.hop(
            t + r(1, 10),
            front,
            hub,
            465 if auth_user else 2525,
            PROXY,
            hconn,
            m,
            [(a, RCPT_OK) for a in addrs],
            final,
            self.iid(front, "fet"),
            proxy_from,
        )
        tc = marks["commit"]
        play(tc + r(1, 3), front_tail(self.rng, final), recv, relay_peer)
        if relay_peer is not None:  # the frontend's 250 2.6.0 to the relay: handed on
            for x in m.rcpts:
                x.mark(relay_peer.queued_time, relay_peer.key[0], "handoff")
        custom = (
            f"S:ProxyHop1={front.fqdn}({front.ip});S:MessageValue=Medium;S:FirstForestHop="
            f"{front.fqdn};S:FromEntity={'Hosted' if auth_user else 'Internet'};"
            f"S:ProxiedClientIPAddress={client_ip};S:ProxiedClientHostname={helo};" + ACCOUNT_FOREST
        )
        self.hub_receive(
            m,
            hub,
            tc,
            m.rcpts,
            client_ip=front.ip,
            client_host=front.fqdn,
            sid=rsid,
            ts=ts,
            connector=hconn,
            orig_client=client_ip,
            orig_server=front.ip,
            custom=custom,
        )
        if m.received_at is None:
            m.received_at = tc
        self.categorize(m, hub, tc, m.rcpts)

    def auth_noise(self, t: int, attacker: str) -> None:
        """A password-guessing session at a frontend; it leaves no tracking row."""
        front = self.rng.choice(self.org.servers)
        port = self.rng.choice((25, 587))
        conn = f"{front.name}\\{'Client' if port == 587 else 'Default'} Frontend {front.name}"
        user = self.rng.choice(
            (
                "administrator",
                "admin",
                "test",
                "scanner@contoso.com",
                self.rng.choice(self.org.users).address,
            )
        )
        recv = Session(
            self.out,
            front.name,
            "RECV",
            conn,
            self.sid(front),
            endpoint(front.ip, port),
            endpoint(attacker, self.port()),
        )
        play(t, auth_failure(self.rng, t, attacker, user), recv, None)
