"""Log files: lines are collected in ten-minute slices, sorted by time and appended to their files.

Exchange logs get one file per UTC hour and server, a new one (`-2`, `-3`, ...) when a file
reaches `MAX_FILE_BYTES`; the IIS relay log gets one file per UTC day.
"""

from __future__ import annotations

from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

from loganalyzer.synth.clock import DAY_MS, HOUR_MS, hour_stamp, iso, utc, w3c

MAX_FILE_BYTES = 10 * 1024 * 1024
SLICE_MS = 600_000  # lines are held in memory for one slice before they are written

TRACKING_FIELDS = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
    "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,"
    "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
    "message-subject,sender-address,return-path,message-info,directionality,tenant-id,"
    "original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,"
    "schema-version"
)
PROTOCOL_FIELDS = (
    "date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,"
    "context"
)
W3C_FIELDS = (
    "date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
    "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
    "cs(User-Agent) cs(Cookie) cs(Referer)"
)
AGENT_FIELDS = (
    "Timestamp,SessionId,LocalEndpoint,RemoteEndpoint,EnteredOrgFromIP,MessageId,P1FromAddress,"
    "P2FromAddresses,Recipient,NumRecipients,Agent,Event,Action,SmtpResponse,Reason,ReasonData,"
    "Diagnostics,NetworkMsgID,TenantID,Directionality"
)
CONNECTIVITY_FIELDS = "date-time,session,source,Destination,direction,description"
TRACKING_VERSION = "15.01.2507.035"
PROTOCOL_VERSION = "15.0.0.0"

# kind -> (folder under the server, file-name prefix, log type)
KINDS = {
    "MSGTRK": ("MessageTracking", "MSGTRK", "Message Tracking Log"),
    "MSGTRKMS": ("MessageTracking", "MSGTRKMS", "Message Tracking Log"),
    "MSGTRKMD": ("MessageTracking", "MSGTRKMD", "Message Tracking Log"),
    "MSGTRKMA": ("MessageTracking", "MSGTRKMA", "Message Tracking Log"),
    "RECV": ("ProtocolLog/SmtpReceive", "RECV", "SMTP Receive Protocol Log"),
    "SEND": ("ProtocolLog/SmtpSend", "SEND", "SMTP Send Protocol Log"),
    "W3C": ("SMTPSVC1", "ex", ""),
    "AGENT": ("AgentLog", "AgentLog", "Agent Log"),
    "CONNECT": ("Connectivity", "CONNECTLOG", "Transport Connectivity Log"),
}
#: The #Fields of the kinds that are neither tracking nor protocol logs.
OTHER_FIELDS = {"AGENT": AGENT_FIELDS, "CONNECT": CONNECTIVITY_FIELDS}


class Sink:
    """The current file of one log series (one server, one kind)."""

    def __init__(self, root: Path, server: str, kind: str, stats: Stats) -> None:
        folder, self.prefix, self.log_type = KINDS[kind]
        self.dir = root / server / folder
        self.kind = kind
        self.stats = stats
        self.fh: BinaryIO | None = None
        self.period = -1
        self.n = 0
        self.size = 0
        self.header_size = 0

    def _header(self, t: int) -> bytes:
        if self.kind == "W3C":
            text = (
                "#Software: Microsoft Internet Information Services 7.5\r\n#Version: 1.0\r\n"
                f"#Date: {w3c(t)}\r\n#Fields: {W3C_FIELDS} \r\n"
            )
            return text.encode("ascii")
        tracking = self.kind.startswith("MSGTRK")
        fields = OTHER_FIELDS.get(self.kind) or (TRACKING_FIELDS if tracking else PROTOCOL_FIELDS)
        text = (
            "#Software: Microsoft Exchange Server\r\n"
            f"#Version: {TRACKING_VERSION if tracking else PROTOCOL_VERSION}\r\n"
            f"#Log-type: {self.log_type}\r\n#Date: {iso(t)}\r\n"
            f"#Fields: {fields}\r\n"
        )
        return b"\xef\xbb\xbf" + text.encode("utf-8")

    def _open(self, t: int, n: int) -> None:
        self.close()
        self.n = n
        if self.kind == "W3C":
            name = f"ex{utc(t):%y%m%d}.log"
        else:
            name = f"{self.prefix}{hour_stamp(t)}-{n}.LOG"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.dir / name, "wb", buffering=1 << 20)  # noqa: SIM115
        head = self._header(t)
        self.fh.write(head)
        self.size = self.header_size = len(head)
        self.stats.files += 1
        self.stats.bytes += len(head)

    def write(self, lines: list[tuple[int, str]]) -> None:
        """Append lines (time, text with its CRLF), all of one slice, in time order."""
        t0 = lines[0][0]
        period = t0 // (DAY_MS if self.kind == "W3C" else HOUR_MS)
        if period != self.period:
            self.period = period
            self._open(t0, 1)
        data = "".join([text for _, text in lines]).encode("utf-8")
        if self.kind == "W3C" or self.size + len(data) <= MAX_FILE_BYTES:
            self._put(data)
            return
        for t, text in lines:
            raw = text.encode("utf-8")
            if self.size + len(raw) > MAX_FILE_BYTES and self.size > self.header_size:
                self._open(t, self.n + 1)
            self._put(raw)

    def _put(self, data: bytes) -> None:
        assert self.fh is not None
        self.fh.write(data)
        self.size += len(data)
        self.stats.bytes += len(data)

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class Stats:
    """Files and bytes written so far."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0


class Output:
    """Collects lines by time slice; writes every slice that ends before the next message starts."""

    def __init__(self, root: Path, omitted: frozenset[str]) -> None:
        self.root = root
        self.omitted = omitted
        self.buckets: dict[int, list[tuple[int, tuple[str, str], str]]] = {}
        self.sinks: dict[tuple[str, str], Sink] = {}
        self.stats = Stats()
        self.watermark = 0  # every line before this time is written
        #: Records each protocol-log session (``sessionlog.SessionLog``), with ``--clients``.
        self.sessions = None

    def emit(self, t: int, key: tuple[str, str], text: str) -> None:
        """Queue one line (with its CRLF) of log `key` = (server, kind) at time `t`."""
        if key[0] in self.omitted:
            return
        if t < self.watermark:
            raise AssertionError(f"line at {iso(t)} is older than written data: {text[:80]}")
        b = t // SLICE_MS
        bucket = self.buckets.get(b)
        if bucket is None:
            bucket = self.buckets[b] = []
        bucket.append((t, key, text))

    def flush_before(self, t: int) -> None:
        """Write every slice that ends at or before `t`."""
        limit = t // SLICE_MS
        if limit * SLICE_MS <= self.watermark:
            return
        for b in sorted(k for k in self.buckets if k < limit):
            self._write(self.buckets.pop(b))
        self.watermark = max(self.watermark, limit * SLICE_MS)

    def _write(self, bucket: list[tuple[int, tuple[str, str], str]]) -> None:
        bucket.sort(key=itemgetter(0))
        groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for t, key, text in bucket:
            g = groups.get(key)
            if g is None:
                g = groups[key] = []
            g.append((t, text))
        for key, lines in groups.items():
            sink = self.sinks.get(key)
            if sink is None:
                sink = self.sinks[key] = Sink(self.root, key[0], key[1], self.stats)
            sink.write(lines)

    def close(self) -> None:
        """Write everything left and close the files."""
        for b in sorted(self.buckets):
            self._write(self.buckets.pop(b))
        self.discard()

    def discard(self) -> None:
        """Close the files, writing nothing more (a run that stopped)."""
        for sink in self.sinks.values():
            sink.close()
