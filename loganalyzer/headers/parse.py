"""From text to a parsed message: pasted headers repaired, then the stdlib ``email`` parser.

Repairs, each noted in the result: leading junk lines before the first header (Outlook's
"Microsoft Mail Internet Headers Version 2.0"), indentation common to every line, double
spacing (a blank line after every line), a blank line inside pasted header text (never in a
message's header section: see ``_pasted_split``), and broken folds (a value on the line after
``Name:`` without leading whitespace, or a line that is neither a header nor a continuation:
glued to the header before it; a line that starts with a ``(comment)``, ``[literal]``,
``<path>`` or an IPv6 address is such a line even though it looks like ``name:``).
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from email import message_from_string
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from html.parser import HTMLParser

_HEADER = re.compile(r"^[!-9;-~]+:")
# what looks like "name:" but is the rest of a value folded without indentation: a (comment),
# [literal] or <path> (Received: ... "(2603:1096:100:41::31) by ..."), or an IPv6 address
_NOT_A_NAME = re.compile(r"^[(\[<]|^[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{0,4}:")
_EMPTY_HEADER = re.compile(r"^[!-9;-~]+:[ \t]*$")
_BROKEN_VALUE = re.compile(r"^[A-Za-z0-9_-]+:\S*;")  # "BCL:0;PCL:0;..." under "Name:"
# a subject's reply or forward prefix ("Fwd: ..." under "Subject:"), not a header's name
_EMPTY_SUBJECT = re.compile(r"^(subject|thread-topic):[ \t]*$", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^(re|fw|fwd|aw|wg|sv|vs|tr|rv|rif|antw|doorst|odp|ynt):(\s|$)", re.I)
_TRANSPORT = re.compile(
    r"^(received|return-path|message-id|authentication-results|received-spf|dkim-signature|"
    r"arc-[\w-]+|x-ms-[\w-]+|x-microsoft-[\w-]+|x-forefront-[\w-]+|x-mailer|x-originating-ip)"
    r"\s*:",
    re.IGNORECASE,
)


#: Headers of a mail message (any one of them makes a text a message's header section).
_MESSAGE = re.compile(
    r"^(received|return-path|message-id|authentication-results|received-spf|dkim-signature|"
    r"arc-[\w-]+|x-ms-[\w-]+|x-microsoft-[\w-]+|x-forefront-[\w-]+|x-mailer|x-originating-ip|"
    r"from|to|cc|subject|date|sender|reply-to|mime-version|content-type|delivered-to|"
    r"thread-index|thread-topic|in-reply-to|references)$",
    re.IGNORECASE,
)


def is_message(msg: Message) -> bool:
    """Whether a parsed text has at least one header of a mail message (a log's first
    line, "#Software: ...", or "Foo: bar" parse as headers too)."""
    return any(_MESSAGE.match(name.strip()) for name in msg)


def decode_text(data: str | bytes) -> str:
    """Text of the input: UTF-16 (as PowerShell's ``>`` and Out-File write it: with its
    byte-order mark, or without one, its ASCII's high bytes zero), UTF-8 (BOM dropped), else
    Latin-1; line ends made ``\\n``."""
    if isinstance(data, bytes):
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            text = data.decode("utf-16", errors="replace")
        elif len(data) > 8 and data[1:64:2].count(0) > 24 and b"\x00" not in data[0:64:2]:
            text = data.decode("utf-16-le", errors="replace")
        elif len(data) > 8 and data[0:64:2].count(0) > 24 and b"\x00" not in data[1:64:2]:
            text = data.decode("utf-16-be", errors="replace")
        else:
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    else:
        text = data.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def repair(text: str, notes: list[str] | None = None) -> str:
    """The header section of ``text`` made parseable (see the module docstring)."""
    notes = notes if notes is not None else []
    start = len(notes)
    lines = text.split("\n")
    nums = list(range(1, len(lines) + 1))  # each line's number in the input, for notes
    while lines and not lines[0].strip():
        del lines[0], nums[0]
    first = next((i for i, ln in enumerate(lines[:6]) if _HEADER.match(ln.lstrip())), 0)
    if first:
        notes.append(f"skipped {first} line(s) before the first header")
        lines, nums = lines[first:], nums[first:]
    if lines and lines[0][:1] in (" ", "\t"):
        lines = textwrap.dedent("\n".join(lines)).split("\n")
        notes.append("removed the indentation common to every line")
    if _double_spaced(lines):
        lines, nums = _undouble(lines, nums)
        notes.append("the text was double-spaced: blank lines between header lines removed")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            j = i
            while j < len(lines) and not lines[j].strip():
                j += 1
            if out and _pasted_split(out, lines, j):
                notes.append(f"removed a blank line inside the header block (line {nums[i]})")
                i = j
                continue
            names = _header_like(out, lines, j)
            if names:
                notes.append(
                    f"the blank line at line {nums[i]} ends the header, as in a message file: "
                    f"the header-like lines after it ({', '.join(names)}) were read as the body"
                )
            out += lines[i:]
            break
        if out and (
            (_EMPTY_HEADER.match(out[-1]) and _BROKEN_VALUE.match(line))
            or (_EMPTY_SUBJECT.match(out[-1]) and _REPLY_PREFIX.match(line))
        ):
            notes.append(f"repaired a broken fold after {out[-1].split(':')[0]}")
            out.append(" " + line)
        elif _is_header(line) or line[:1] in (" ", "\t") or not out or line.startswith("From "):
            out.append(line)
        else:
            notes.append(f"joined a line without folding whitespace to {_name(out)}")
            out.append(" " + line)
        i += 1
    # one note per kind of repair: a double-spaced paste breaks every fold the same way
    counts = Counter(notes[start:])
    notes[start:] = [f"{n} ({counts[n]} times)" if counts[n] > 1 else n for n in counts]
    return "\n".join(out)


def _is_header(line: str) -> bool:
    return bool(_HEADER.match(line)) and not _NOT_A_NAME.match(line)


def _name(out: list[str]) -> str:
    head = next((ln for ln in reversed(out) if ln[:1] not in (" ", "\t")), "")
    return head.split(":", 1)[0]


def _double_spaced(lines: list[str]) -> bool:
    """Whether every line break of the text's start is a blank line (a ticket system's or
    webmail's copy, CR CR LF line ends): the first two and all but one of the first ten. A
    message file's header lines follow each other, so its first breaks are not blank."""
    gaps: list[int] = []
    run = -1  # blank lines since the last text line; -1 before the first
    for ln in lines:
        if ln.strip():
            if run >= 0:
                gaps.append(run)
                if len(gaps) == 10:
                    break
            run = 0
        elif run >= 0:
            run += 1
    ones = sum(g == 1 for g in gaps)
    return len(gaps) >= 3 and gaps[0] == gaps[1] == 1 and ones >= len(gaps) - 1


def _undouble(lines: list[str], nums: list[int]) -> tuple[list[str], list[int]]:
    """Double spacing undone: a single blank line goes; a longer run was a blank line of the
    original (the end of the header) and stays as one (or half of it, when it was doubled)."""
    keep: list[int] = []
    i = 0
    while i < len(lines):
        if lines[i].strip():
            keep.append(i)
            i += 1
            continue
        j = i
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j - i > 1:
            keep += range(i, i + max(1, (j - i - 1) // 2))
        i = j
    return [lines[k] for k in keep], [nums[k] for k in keep]


def _blocks(lines: list[str], j: int) -> list[list[str]]:
    """The lines from ``j`` in blocks between blank lines."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for ln in lines[j:]:
        if ln.strip():
            current.append(ln)
        elif current:
            blocks.append(current)
            current = []
    return [*blocks, current] if current else blocks


def _heads(block: list[str]) -> list[str]:
    """Lower-cased names of a block's header lines."""
    return [ln.split(":", 1)[0].strip().lower() for ln in block if _is_header(ln)]


def _opens_headers(before: list[str], block: list[str]) -> bool:
    """A block that goes on with headers: it starts with one, with the rest of a folded value
    followed by headers, or with the value of an empty ``Name:`` that ends the lines before it
    (``Subject:``, blank line, ``hello``)."""
    if _is_header(block[0]):
        return True
    if block[0][:1] in (" ", "\t"):  # a fold the blank line cut: headers go on after it
        return bool(before) and any(_is_header(ln) for ln in block[1:])
    empty = bool(before) and bool(_EMPTY_HEADER.match(before[-1]))
    return empty and len(block) > 1 and _is_header(block[1])


def _header_like(out: list[str], lines: list[str], j: int) -> list[str]:
    """Names of the transport headers in the block from ``j``, when it goes on with headers."""
    blocks = _blocks(lines, j)
    if not out or not blocks or not _opens_headers(out, blocks[0]):
        return []
    names = [ln.split(":", 1)[0] for ln in blocks[0] if _is_header(ln) and _TRANSPORT.match(ln)]
    return list(dict.fromkeys(names))[:4]


#: A message's own fields (servers put theirs on top of them): a header with one of them is a
#: message's, which has no blank line inside.
_OWN = frozenset(
    "from to cc bcc subject date sender reply-to message-id in-reply-to references "
    "mime-version content-type".split()
)


def _pasted_split(out: list[str], lines: list[str], j: int) -> bool:
    """Whether the blank line before ``j`` splits pasted header text (to be removed) rather
    than ending a message's header section (RFC 5322: the first blank line ends it, and a body
    may start with header-like lines: a forward, or hops and verdicts planted by its writer):
    only servers' headers before it, headers with a server's after it, and no body. See README.
    """
    if not _header_like(out, lines, j):
        return False
    blocks = _blocks(lines, j)
    before = _heads(out)
    if not _is_header(blocks[0][0]) and blocks[0][0][:1] not in (" ", "\t"):
        before = before[:-1]  # the value of "Subject:" (the last line) follows
    if set(before) & _OWN:
        return False
    return all(_opens_headers(prev, block) for prev, block in zip(blocks, blocks[1:], strict=False))


def parse_message(data: str | bytes, notes: list[str] | None = None) -> Message:
    """The input as an ``email`` message (compat32: raw header values, no exceptions)."""
    return message_from_string(repair(decode_text(data), notes), policy=compat32)


def reparse(msg: Message, notes: list[str] | None = None) -> Message:
    """An attached message whose header section the parser cut short (a line that is neither
    a header nor a fold), parsed again with the repairs."""
    from email.errors import MissingHeaderBodySeparatorDefect

    body = msg.get_payload()
    broken = any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in msg.defects)
    if not broken or not isinstance(body, str):
        return msg
    head = "".join(f"{k}: {v}\n" for k, v in msg.items())
    return message_from_string(repair(head + body, notes), policy=compat32)


def parse_headers(text: str, notes: list[str] | None = None) -> Message:
    """A block of headers (an NDR's copy of the original's headers) as a message."""
    return HeaderParser(policy=compat32).parsestr(repair(decode_text(text), notes))


def unfold(value: str | None) -> str:
    """A header value on one line (folds become single spaces)."""
    return re.sub(r"[ \t]*\r?\n[ \t]*", " ", str(value or "")).strip()


def decoded(value: str | None) -> str | None:
    """A header value with RFC 2047 encoded words decoded, on one line."""
    if value is None:
        return None
    text = unfold(value)
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def items(msg: Message) -> list[tuple[str, str]]:
    """(name, unfolded value) of every header, top first."""
    return [(name, unfold(value)) for name, value in msg.items()]


def message_id(value: str | None) -> str | None:
    """``<id@host>`` from a Message-ID style value (the first, angle brackets added)."""
    text = unfold(value)
    if not text:
        return None
    m = re.search(r"<([^<>\s]+)>", text)
    ident = m[1] if m else text.split()[0].strip("<>")
    return f"<{ident}>" if ident else None


class _Text(HTMLParser):
    """The words of an HTML body, its blocks apart as paragraphs (``html_text``)."""

    _BLOCKS = frozenset("p div table tr li ul ol pre h1 h2 h3 h4 h5 h6 blockquote hr".split())

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0  # inside <style> or <script>
        self.pre = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("style", "script", "head"):
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in self._BLOCKS:
            self.out.append("\n\n")
            self.pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCKS:
            self.out.append("\n\n")
            self.pre -= tag == "pre" and self.pre > 0

    def handle_data(self, data: str) -> None:
        if not self.skip:  # outside <pre> the source's line breaks are spaces, as a browser
            self.out.append(data if self.pre else re.sub(r"\s+", " ", data))


def html_text(html: str) -> str:
    """The text an HTML body shows: entities decoded, tags dropped, ``<br>`` a line break, a
    block (paragraph, table row, ``<pre>``) a paragraph of its own."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [ln.strip() for ln in "".join(parser.out).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def body_text(part: Message) -> str:
    """A text part's decoded content (transfer encoding and charset)."""
    payload = part.get_payload(decode=True)
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")
