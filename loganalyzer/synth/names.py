"""Word pools: people's names, subjects, external domains and their mail hosts."""

from __future__ import annotations

import random
import unicodedata

FIRST_NAMES = tuple(
    """
    Anna Lukas Zoë José Björn Chloé Mateusz Sören Ørjan Łucja François Inés Małgorzata
    Jürgen Agnès Mikael Siobhán Dóra Hélène Emma Noah Olivia Liam Sofia Leon Mia Paul Hannah
    Felix Laura David Sarah Jonas Julia Max Lea Tim Nina Erik Marie Ahmet Ayşe Ewa Tomasz
    Giulia Marco Priya Rahul Mei Kenji Yuki Omar Fatima Ivan Olga Dmitri Sven Ingrid Pierre
    Camille Thomas Katrin Stefan Sabine Michael Andrea Christian Petra Daniel Claudia Nguyễn
""".split()
)
LAST_NAMES = tuple(
    """
    Müller García Åström Nowak Dubois O'Brien Kovačević Øvergård Schröder Fernández Novák
    Søndergaard Yılmaz Papadopoulos Smith Johnson Rossi Kowalski Jansen Lefèvre Weiß Bauer
    Hoffmann Schäfer Koch Richter Wagner Becker Schulz Fischer Meyer Zimmermann Krüger Wolf
    Neumann Schwarz Braun Hofmann Hartmann Lange Martin Bernard Moreau Laurent Brown Taylor
    Wilson Davies Evans Thomas Roberts Nielsen Hansen Larsen Lindqvist Virtanen Horváth
    Szabó Popescu Ivanova Tanaka Suzuki Wang Li Chen Kumar Singh Haddad Costa Silva
""".split()
)

_FOLD = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "ł": "l",
        "Ł": "L",
        "ß": "ss",
        "đ": "d",
        "Đ": "D",
        "ı": "i",
        "œ": "oe",
        "þ": "th",
        "ð": "d",
    }
)


def ascii_fold(text: str) -> str:
    """`text` in lower-case ASCII letters, digits, dots, dashes and spaces (`Zoë` -> `zoe`)."""
    text = unicodedata.normalize("NFKD", text.translate(_FOLD))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return "".join(c for c in text.lower() if c.isascii() and (c.isalnum() or c in ".- "))


# name, outbound MTA host, MX host, Message-ID style
EXTERNAL_DOMAINS = (
    ("example.com", "mail.example.com", "mx1.example.com", "postfix"),
    ("example.net", "smtp-out.example.net", "mx.example.net", "java"),
    ("example.org", "mta-07.example.org", "mx01.example.org", "gmailish"),
    ("adatum.com", "mail.adatum.com", "adatum-com.mail.eo.example.net", "outlook"),
    ("northwindtraders.com", "smtp.northwindtraders.com", "mx.northwindtraders.com", "postfix"),
    ("tailspintoys.com", "mail01.tailspintoys.com", "mail01.tailspintoys.com", "oldoutlook"),
    ("fourthcoffee.com", "out.fourthcoffee.com", "in.fourthcoffee.com", "ses"),
    ("woodgrovebank.com", "relay.woodgrovebank.com", "mx2.woodgrovebank.com", "outlook"),
    ("litwareinc.com", "smtp.litwareinc.com", "mx.litwareinc.com", "java"),
    ("proseware.com", "mail.proseware.com", "mx-in.proseware.com", "gmailish"),
)

# The first reply line of each external MX and the text of its queued-reply.
MX_SOFTWARE = {
    "postfix": ("ESMTP Postfix", "250 2.0.0 Ok: queued as {qid}"),
    "java": ("ESMTP ready", "250 2.0.0 OK {qid} message accepted for delivery"),
    "gmailish": ("ESMTP ready", "250 2.0.0 OK  {epoch} {qid} - smtp"),
    "outlook": (
        "Microsoft ESMTP MAIL Service ready",
        "250 2.6.0 {mid} [InternalId={iid}, Hostname={host}] Queued mail for delivery",
    ),
    "oldoutlook": (
        "Microsoft ESMTP MAIL Service, Version: 8.5.9600.16384 ready",
        "250 2.6.0 {mid} Queued mail for delivery",
    ),
    "ses": ("ESMTP SimpleEmailService", "250 Ok {qid}"),
}

SUBJECT_PARTS = tuple(
    """
Q1 budget, final version
Meeting "Project Phoenix" moved; new room
Angebot {Nr. 4711} – Bestätigung
Résumé: Zoë's onboarding plan
会议纪要 2026-03
Отчёт за неделю; черновик
Invoice #{n} — due {date}
Lunch on Friday?
Your order {n} has shipped
Urlaubsvertretung / out of office
Re: contract {draft, v3}
Server maintenance window, Saturday 22:00-02:00
Feedback: "quick" survey (2 min)
Reisekostenabrechnung Februar
Weekly status; team "Blue"
Déjà vu: the same bug again
Kick-off {Phase 2}
Hello from Kraków
Password expiry notice
Agenda for tomorrow
Budget: 10,000 EUR approved
Spørgsmål om fakturaen
Welcome aboard, Łucja!
Photos from the offsite 📷
Shipment delayed; new ETA
Action required: review PR #{n}
Newsletter März 2026
Fwd: slides
Minutes, 2 March
{n} new comments on your post
""".strip().splitlines()
)
SUBJECT_PREFIX = ("", "", "", "", "Re: ", "RE: ", "Fwd: ", "FW: ", "AW: ", "WG: ")

SPAM_SUBJECTS = (
    "You have WON a prize, claim now",
    "Re: invoice overdue; pay today",
    "URGENT: verify account",
    "Cheap meds, 90% off",
    "Your parcel is waiting {n}",
)


def subject(rng: random.Random) -> str:
    """A realistic subject line; many contain commas, quotes, semicolons, braces or non-ASCII."""
    text = rng.choice(SUBJECT_PARTS)
    if "{n}" in text or "{date}" in text:
        text = text.replace("{n}", str(rng.randint(1000, 99999))).replace(
            "{date}", f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        )
    return rng.choice(SUBJECT_PREFIX) + text


def spam_subject(rng: random.Random) -> str:
    """A spam subject line."""
    return rng.choice(SPAM_SUBJECTS).replace("{n}", str(rng.randint(100000, 999999)))
