"""What every journey step needs: identifiers, tracking rows, recipients and SMTP hops."""

from __future__ import annotations

import random

from loganalyzer.synth.clock import iso
from loganalyzer.synth.model import Message, Rcpt
from loganalyzer.synth.org import ACCEPTED_DOMAINS, Org, Server, network_guid
from loganalyzer.synth.protocol import Session, endpoint, internal_hop, mail_from, play
from loganalyzer.synth.tracking import ACCOUNT_FOREST, row
from loganalyzer.synth.writers import Output

INTRA = "Intra-Organization SMTP Send Connector"
INTERNET = "Internet Send Connector"
PROXY = "Inbound Proxy Internal Send Connector"
RCPT_OK = "250 2.1.5 Recipient OK"


class EngineBase:
    """Identifiers, rows and hops shared by the journey steps."""

    def __init__(self, rng: random.Random, org: Org, out: Output, end: int) -> None:
        self.rng = rng
        self.org = org
        self.out = out
        self.end = end  # the logs stop here: nothing is scheduled at or after it
        self._iid: dict[tuple[str, str], int] = {}
        self._sid: dict[str, int] = {}

    # identifiers -------------------------------------------------------------------------
    def iid(self, server: Server, service: str) -> str:
        """The next internal-message-id of one transport service of `server`."""
        key = (server.name, service)
        v = self._iid.get(key)
        v = self.rng.randint(10**12, 9 * 10**12) if v is None else v + 1
        self._iid[key] = v
        return str(v)

    def sid(self, server: Server) -> str:
        """The next 16-hex-digit SMTP session id of `server`."""
        v = self._sid.get(server.name)
        v = 0x08DE5A0000000000 + self.rng.getrandbits(36) if v is None else v + 1
        self._sid[server.name] = v
        return f"{v:016X}"

    def port(self) -> int:
        return self.rng.randint(49152, 65535)

    def internal_mid(self, server: Server) -> str:
        return f"<{self.rng.getrandbits(128):032x}@{server.fqdn}>"

    def entry_id(self) -> str:
        return (
            "S:ItemEntryId=00-00-00-00-"
            + self.rng.getrandbits(560).to_bytes(70, "big").hex("-").upper()
        )

    # rows ----------------------------------------------------------------------------------
    def trk(self, t: int, server: Server, kind: str, m: Message | None, **fields) -> None:
        """Write one tracking row of `m` (its Message-ID, subject, sender ... filled in)."""
        if m is not None:
            fields.setdefault("mid", m.mid)
            fields.setdefault("nid", m.nid)
            fields.setdefault("subject", m.subject)
            fields.setdefault("sender", m.sender)
            fields.setdefault("return_path", m.return_path)
            fields.setdefault("size", m.size)
            fields.setdefault("direction", m.direction)
            fields.setdefault("reference", m.reference)
        self.out.emit(t, (server.name, kind), row(t, log_id=network_guid(self.rng), **fields))

    def event(
        self,
        t: int,
        srv: Server,
        kind: str,
        m: Message,
        rcpts: list[Rcpt],
        code: str,
        status: str = "",
        **fields,
    ) -> None:
        """Write a row of `m` naming `rcpts` and add it to their stories as `code`.

        `server-hostname`, `internal-message-id` and `custom-data` default to the server's
        NetBIOS name, the message's hub id there and the account-forest data.
        """
        fields.setdefault("server_host", srv.name)
        fields.setdefault("iid", m.iids.get(srv.name, ""))
        fields.setdefault("custom", ACCOUNT_FOREST)
        self.trk(t, srv, kind, m, rcpts=[x.address for x in rcpts], **fields)
        for x in rcpts:
            x.mark(t, srv.name, code, status)

    # recipients ------------------------------------------------------------------------------
    def new_rcpt(self, address: str, parent: str | None = None) -> Rcpt:
        """A recipient of the kind its address resolves to."""
        org = self.org
        if address in org.lists:
            return Rcpt(address, "moderated" if address == org.moderated else "list", parent=parent)
        user = org.by_address.get(address)
        if user is not None:
            kind = "redirected" if user.forward_to else "mailbox"
            rc = Rcpt(address, kind, user=user, parent=parent)
            if kind == "mailbox" and self.rng.random() < 0.004:
                rc.busy = 1
            return rc
        if address.split("@")[1] in ACCEPTED_DOMAINS:
            return Rcpt(address, "unknown", parent=parent)
        return Rcpt(address, "external", parent=parent)

    # SMTP ----------------------------------------------------------------------------------
    def queued(self, m: Message, iid: str, dst: Server) -> str:
        """The `250 2.6.0 ... Queued mail for delivery` reply of an Exchange server."""
        secs = self.rng.randint(20, 300) / 1000 + m.size / 40_000_000
        return (
            f"250 2.6.0 {m.mid} [InternalId={iid}, Hostname={dst.fqdn}] {m.size} bytes in"
            f" {secs:.3f}, {m.size / 1024 / secs:.3f} KB/sec Queued mail for delivery"
        )

    def hop(
        self,
        t: int,
        src: Server,
        dst: Server,
        port: int,
        send_connector: str,
        recv_connector: str,
        m: Message,
        rcpts: list[tuple[str, str]],
        final: str,
        record_id: str,
        proxy_from: str = "",
    ) -> tuple[dict[str, int], str, str, int, int]:
        """An SMTP session between two Exchange servers, in both protocol logs.

        Returns (marked times, send session id, receive session id, start, end).
        """
        ssid, rsid, p = self.sid(src), self.sid(dst), self.port()
        send = Session(
            self.out,
            src.name,
            "SEND",
            send_connector,
            ssid,
            endpoint(src.ip, p),
            endpoint(dst.ip, port),
        )
        recv = Session(
            self.out,
            dst.name,
            "RECV",
            recv_connector,
            rsid,
            endpoint(dst.ip, port),
            endpoint(src.ip, p),
        )
        ops = internal_hop(
            self.rng,
            t,
            client_fqdn=src.fqdn,
            client_ip=src.ip,
            server_name=dst.name,
            server_fqdn=dst.fqdn,
            mail=mail_from(m.return_path, m.size),
            rcpts=rcpts,
            size=m.size,
            final=final,
            record_id=record_id,
            mid=m.mid,
            proxy_from=proxy_from,
        )
        end, marks = play(t, ops, recv, send)
        return marks, ssid, rsid, t, end

    def submit_time(self, m: Message) -> str:
        """ClientSubmitTime in SEND rows: the origination time of mail from mailboxes."""
        return iso(m.orig_time) if m.direction == "Originating" else ""
