"""Mail an IIS SMTP service accepted, read from its lines alone (IIS logs name no session).

A client's lines (same server and remote IP, in time and file order) are cut into mail
transactions at each HELO, EHLO, MAIL, RSET and QUIT line. A transaction whose DATA line was
not refused (reply below 400) is an accepted message: its sender is the MAIL FROM address
and its recipients are the RCPT TO addresses the server did not refuse; a refused RCPT is a
rejected attempt (``trace.rejected``), never a recipient of the message. The message is
known by the Message-ID of its DATA line, or by the server's queue ID where the DATA line
holds no Message-ID (``0019E3517201287MAIL01``). These SQL fragments are the one place that
rule is written: the list of relay-only messages and a message's IIS sessions both use them.
"""

from __future__ import annotations

import re

#: A line that starts a new mail transaction of its client.
BOUNDARY = "upper(command) in ('HELO', 'EHLO', 'MAIL', 'RSET', 'QUIT')"
#: A reply that accepted the command (IIS writes 0, stored as null, on outbound commands).
_OK = "coalesce(reply_code, 0) < 400"
#: The address of an accepted MAIL FROM line (null elsewhere; '' for the null sender <>).
SENDER = (
    f"case when upper(command) = 'MAIL' and {_OK} "
    r"then regexp_extract(data, 'FROM:\s*<?([^<>\s]*)', 1, 'i') end"
)
#: The address of an accepted RCPT TO line (null elsewhere).
RECIPIENT = (
    f"case when upper(command) = 'RCPT' and {_OK} "
    r"then nullif(regexp_extract(data, 'TO:\s*<?([^<>\s]+@[^<>\s]+?)>?(\s|$)', 1, 'i'), '') "
    "end"
)
#: An accepted DATA line: the message's line (its columns only the lines have).
DATA = f"upper(command) = 'DATA' and {_OK}"
#: The queue ID of a DATA line that holds no Message-ID.
QUEUE_ID = (
    "case when upper(command) = 'DATA' and message_id is null "
    r"and regexp_matches(trim(data), '^[^\s<>@]+$') then trim(data) end"
)
#: The columns that order one client's lines.
ORDER = "date_time, file, line"


def transactions(lines: str, peer: str = "server, remote_ip, direction") -> str:
    """SQL of the relation ``lines`` (IIS SMTP lines with the smtp columns) with ``tx``, the
    number of each line's transaction among the lines of its ``peer`` (columns), the line's
    accepted ``mail_from`` and ``rcpt_to`` addresses, its ``queue_id``, and ``tx_messages``,
    the accepted DATA lines of its transaction: more than one when two sessions of a client
    were logged among each other's lines, whose senders and recipients cannot be told apart."""
    return (
        f"select *, count(*) filter (where {DATA}) over (partition by {peer}, tx) "
        "as tx_messages from ("
        f"select *, sum(case when {BOUNDARY} then 1 else 0 end) over "
        f"(partition by {peer} order by {ORDER} rows unbounded preceding) as tx, "
        f"{SENDER} as mail_from, {RECIPIENT} as rcpt_to, {QUEUE_ID} as queue_id "
        f"from ({lines}))"
    )


def accepted(lines: str) -> str:
    """SQL of the messages accepted in ``lines`` (IIS SMTP receive lines): one row per
    accepted DATA line (two in one transaction when two sessions' lines mix) with ``k`` (its
    Message-ID, else its queue ID), ``message_id``, ``queue_id``, ``server``, ``remote_ip``,
    ``date_time`` (the DATA line's), ``sender`` and ``recipients`` (in the order the lines
    name them, repeats kept; none when the transaction holds another message too)."""
    return f"""
        with l as ({transactions(lines)}),
        m as (
            select server, remote_ip, direction, tx,
                   any_value(mail_from) filter (where mail_from is not null) as sender,
                   list(rcpt_to order by {ORDER}) filter (where rcpt_to is not null)
                       as recipients,
                   any_value(tx_messages) as messages
            from l group by all
        )
        -- every accepted DATA line: two sessions of one client logged among each other's
        -- lines put two DATA lines in one transaction, each a message of its own, whose
        -- sender and recipients cannot be told apart (none rather than the other's)
        select coalesce(d.message_id, d.queue_id) as k, d.message_id, d.queue_id, d.server,
               d.remote_ip, d.date_time,
               if(m.messages = 1, nullif(m.sender, ''), null) as sender,
               if(m.messages = 1, m.recipients, null) as recipients
        from l d join m
          on d.server = m.server and d.remote_ip = m.remote_ip and d.direction = m.direction
         and d.tx = m.tx
        where {DATA} and coalesce(d.message_id, d.queue_id) is not null
    """


def is_queue_id(text: str | None) -> bool:
    """Whether an ID asked for can be a queue ID (``QUEUE_ID``): no ``@``, brackets aside."""
    bare = (text or "").strip().removeprefix("<").removesuffix(">")
    return bool(re.fullmatch(r"[^\s<>@]+", bare))
