"""Ground truth: `OUT/truth.jsonl`, one JSON object per message and recipient.

Keys, in this order: `message_id, network_message_id, sender, recipient, subject, size,
received_at, verdict, server, at, enhanced_status, reply, ndr_message_id, expanded_from,
deferrals, queue`.
Times are UTC ISO 8601 with milliseconds and `Z`; a value that does not apply is null.

- `message_id`, `network_message_id`: as in the tracking logs (Message-ID with angle brackets).
- `sender`: the tracking rows' sender-address; for NDRs (return-path `<>`) it is
  `MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com`.
- `recipient`: one row for every address the message was sent to, every member of every list it
  was expanded to (nested lists included) and every REDIRECT target.
- `subject`, `size`: message-subject and total-bytes (the same on every row of the message).
- `received_at`: when the organisation first received the message: the first RECEIVE row in
  the Exchange logs (STOREDRIVER RECEIVE in MSGTRKMS for mail from a mailbox, the hub's SMTP
  RECEIVE for Internet mail and SMTP client submissions). With `--relay`, Internet mail's
  `received_at` is the time of the DATA line of the relay's inbound session (whole seconds).
  An NDR's is the time of the DSN row that created it. `--omit-server` does not change it.
- `server` is a server's name as the output folders spell it (`EX02`, `RELAY01`).
- `verdict`, `server`, `at`, `reply`, `enhanced_status`, `ndr_message_id` per verdict:
  - `delivered`: the mailbox server and the time of the DELIVER row (MSGTRKMD) naming the
    recipient.
  - `sent_external`: the server whose SEND over `Internet Send Connector` handed the message to
    the remote MX, and that SEND's time; `reply` = the row's recipient-status for the recipient
    (the MX's reply to the data, e.g. `250 2.0.0 Ok: queued as ...`).
  - `failed`: the server that gave up and the time of its FAIL row (for a moderator's
    rejection: the MODERATORREJECT row in MSGTRKMA). `reply` = the status text (the LED value of
    a bracketed `[{LED=...};...]` status, else the status itself), `enhanced_status` its x.y.z
    (`5.1.1`, `5.7.1`, `4.4.7` for `550 4.4.7 QUEUE.Expired; message expired`),
    `ndr_message_id` the Message-ID of the NDR (the reference of the DSN row that follows the
    failure), null when none was sent (no NDR for a message whose return-path is `<>`).
  - `deferred`: still pending when the logs end: the server holding the message and the time of
    its last DEFER row; `reply` = that row's status (LED value), the last error.
  - `dropped`: a DROP row (a transport rule deleting inbound spam; `reply` its status) or a
    SUPPRESSED row (an automatic reply to an external recipient; `reply` null): server, time.
  - `quarantined`: moved to the poison message queue after the transport service crashed on it
    twice (RECEIVE, AGENTINFO, LOAD from BOOTLOADER, then POISONMESSAGE): server and time of the
    POISONMESSAGE row. (The content filter's quarantine: with `agent_logs`, below.)
  - `moderation`: awaiting a moderator: the INITMESSAGECREATED row (the hub, its time), with no
    MODERATORAPPROVE or MODERATORREJECT for that recipient later in the logs.
  - `expanded`: the list itself: the EXPAND row whose related-recipient-address is the list.
    Its members have rows of their own whose `expanded_from` is the list.
  - `last_seen` (only with `--omit-server`): the recipient's story continued on the omitted
    server: `server` = the last server whose written logs name the recipient, `at` = the time
    of its last row there: the SEND to the omitted server, or, with `--relay`, the line of the
    relay's log with the frontend's reply `250+2.6.0+<message-id>+...` (cs-username
    OutboundConnectionResponse; whole seconds) when the omitted server was the hub.
  `reply` is null for the other verdicts. `enhanced_status` is the x.y.z right after the
  three-digit code at the start of `reply` (`250 2.0.0 Ok` -> `2.0.0`), null if there is none.
- `expanded_from` (null when that EXPAND or REDIRECT row is on an omitted server's logs): the
  list whose EXPAND row added the recipient (for members of a nested list
  the nested list), or the redirected address for a REDIRECT target; null otherwise. A
  redirected recipient (the REDIRECT row's related-recipient-address) takes its target's
  verdict, server, at, reply, enhanced_status and ndr_message_id.
- `deferrals`: the times of the written DEFER rows naming the recipient, in time order (every
  retry; empty when none): what the report counts as deferrals.
- `queue`: the recipient's waits in the servers' queues, in time order (empty when never
  deferred): `server`; `next_hop` (the mailbox server a delivery within the organisation
  waits for, else the recipient's domain); `since`, its first DEFER row there; `until`, its
  next row there that hands it on or ends its journey (SEND, DELIVER, FAIL, DROP...), null
  when the written logs end first; `deferrals`, each DEFER row of the wait: `at` and `reply`
  (its status, the LED value).

With `agent_logs` (antispam.py, nexthops.py): sessions the frontends refused give rows of
verdict `rejected` (server = the frontend, `at` = the refusing reply, `reply` its text) with
`stage`, `agent` and `remote_ip`; `message_id` only when refused at DATA, `sender`
and `recipient` null before MAIL and RCPT. Messages the Content Filter deleted or quarantined
after accepting them give `dropped` or `quarantined` rows (at the agent's decision, `reply`
null) with the same three keys. Every other row gets `next_hop_failure`: how the next hop
of a deferred or failed recipient failed (`dns`, `refused`, `timeout`, `tls`), else null.

With `clients` (clients.py): each message a client session handed in has its rows like any
other message (`received_at`: the accepting server's SMTP RECEIVE); a recipient the session
refused at RCPT (`550 5.7.54`, not a relay) gets a `rejected` row as above (stage `rcpt`,
`agent` null, `remote_ip` the client, `message_id` null: the refusal names no message).

With `--omit-server` each recipient's verdict comes from its last row in the written logs,
mapped as above, where a SEND to another server of the organisation (or the relay's logged
`250 2.6.0` reply) means `last_seen`. A recipient no written row names, and a message no
written row names, get no truth row.
"""

from __future__ import annotations

import re

from loganalyzer.fate import VERDICTS
from loganalyzer.synth.clock import iso
from loganalyzer.synth.model import Message, Rcpt

_FINAL = frozenset(VERDICTS) - {"last_seen"}
_WITH_REPLY = frozenset(("failed", "deferred", "sent_external", "dropped"))
_ENHANCED = re.compile(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")


def enhanced_status(reply: str | None) -> str | None:
    """The x.y.z after the reply code of `reply`, if any."""
    if not reply:
        return None
    m = _ENHANCED.match(reply)
    return m.group(1) if m else None


def outcome(rc: Rcpt, omitted: frozenset[str]) -> tuple | None:
    """(verdict, server, at, reply, ndr) of `rc` from its last written row, or None."""
    entries = sorted(
        (e for e in rc.story if e[2] != "dsn" and e[1] not in omitted), key=lambda e: e[0]
    )
    if not entries:
        return None
    t, server, code, status, ndr = entries[-1]
    if code == "redirect" and rc.target is not None:
        inherited = outcome(rc.target, omitted)
        if inherited is not None:
            return inherited
    verdict = code if code in _FINAL else "last_seen"
    reply = (status or None) if verdict in _WITH_REPLY else None
    return verdict, server, t, reply, ndr if verdict == "failed" else None


def _written_parent(msg: Message, rc: Rcpt, omitted: frozenset[str]) -> str | None:
    """The list or redirected address `rc` came from, if the written logs show that step (the
    EXPAND or REDIRECT row is on a server that was not omitted)."""
    if rc.parent is None:
        return None
    parent = next((p for p in msg.all if p.address == rc.parent), None)
    if parent is None:
        return rc.parent
    shown = any(e[2] in ("expanded", "redirect") and e[1] not in omitted for e in parent.story)
    return rc.parent if shown else None


#: Steps that take a waiting recipient off a server's queue: it is handed on or its journey
#: ends there (moderation, expansion and passing steps do not).
_LEAVES = frozenset(("handoff", "delivered", "sent_external", "failed", "dropped", "quarantined"))


def queue(rc: Rcpt, omitted: frozenset[str]) -> list[dict]:
    """The waits of `rc` in the servers' queues, in time order: from a DEFER on a server until
    its next step there that hands it on or ends it (`until`, null when the logs end first)."""
    hop = rc.busy_on or rc.address.rsplit("@", 1)[-1].lower()
    waits: list[dict] = []
    open_on: dict[str, dict] = {}
    for t, server, code, status, _ in sorted(rc.story, key=lambda e: e[0]):
        if server in omitted:
            continue
        wait = open_on.get(server)
        if code == "deferred":
            if wait is None:
                wait = {"server": server, "next_hop": hop, "since": iso(t), "until": None}
                wait["deferrals"] = []
                waits.append(wait)
                open_on[server] = wait
            wait["deferrals"].append({"at": iso(t), "reply": status or None})
        elif code in _LEAVES and wait is not None:
            wait["until"] = iso(t)
            del open_on[server]
    return waits


def rows(msg: Message, omitted: frozenset[str]) -> list[dict]:
    """The truth rows of `msg` and, after them, of the NDRs it caused."""
    out = []
    for rc in msg.all:
        res = outcome(rc, omitted)
        if res is None:
            continue
        verdict, server, t, reply, ndr = res
        out.append(
            {
                "message_id": msg.mid,
                "network_message_id": msg.nid,
                "sender": msg.sender,
                "recipient": rc.address,
                "subject": msg.subject,
                "size": msg.size,
                "received_at": iso(msg.received_at) if msg.received_at is not None else None,
                "verdict": verdict,
                "server": server,
                "at": iso(t),
                "enhanced_status": enhanced_status(reply),
                "reply": reply,
                "ndr_message_id": ndr,
                "expanded_from": _written_parent(msg, rc, omitted),
                "deferrals": sorted(
                    iso(e[0]) for e in rc.story if e[2] == "deferred" and e[1] not in omitted
                ),
                "queue": queue(rc, omitted),
            }
        )
    for ndr_msg in msg.ndrs:
        out += rows(ndr_msg, omitted)
    return out
