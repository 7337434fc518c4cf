"""The anti-spam agent family: actions, reasons and agents of the agent log (FORMATS.md L)."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import LOGANALYZER

import eventcodes
from eventcodes import lookup

#: Action -> outcome, from what MS-AL13 says each action does to the message.
ACTIONS = {
    "AcceptMessage": "info",
    "DeleteMessage": "dropped",
    "DeleteRecipients": "dropped",
    "Disconnect": "failed",
    "QuarantineMessage": "quarantined",
    "QuarantineRecipients": "quarantined",
    "RejectAuthentication": "failed",
    "RejectCommand": "failed",
    "RejectConnection": "failed",
    "RejectMessage": "failed",
    "RejectRecipients": "failed",
}


@pytest.mark.parametrize(("action", "outcome"), ACTIONS.items())
def test_every_documented_action_is_known(action, outcome):
    entry = lookup(action)
    assert (entry.family, entry.outcome, entry.source) == ("agent", outcome, "MS-AL13")


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("RecipientDoesNotExist", "failed"),
        ("BlockListProvider", "failed"),
        ("LocalBlockList", "failed"),
        ("Fail_NotPermitted", "failed"),
        ("SclAtOrAboveRejectThreshold", "failed"),
        ("SclAtOrAboveQuarantineThreshold", "quarantined"),
        ("SclAtOrAboveDeleteThreshold", "dropped"),
        ("TempError", "deferred"),
    ],
)
def test_reasons_say_what_became_of_the_message(reason, outcome):
    assert lookup(reason, family="agent").outcome == outcome


def test_every_agent_of_the_log_is_named():
    codes = {c.code for c in eventcodes.entries("agent")}
    assert {
        "Connection Filtering Agent",
        "Content Filter Agent",
        "Sender Id Agent",
        "Sender Filter Agent",
        "Recipient Filter Agent",
        "Edge Rule Agent",
        "Inbound Trust Agent",
    } <= codes


def test_codes_command_explains_an_agent_reason():
    done = subprocess.run(
        [LOGANALYZER, "codes", "RecipientDoesNotExist", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    assert (entry["family"], entry["name"], entry["outcome"]) == (
        "agent",
        "Unknown recipient",
        "failed",
    )
    assert entry["meaning"].startswith("Recipient Filter: the recipient is not in the directory")
