"""A row rendered into a tracking log line and parsed back is the same row (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from logfiles import row, write_log
from test_ingest_tracking import rows_of

from loganalyzer.ingest import ingest

# Anything Exchange can log inside one field: no line ends and no NUL, everything else goes.
text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n\x00"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s)
hostile = st.one_of(text, st.sampled_from(["a,b", '"q"', "x;y", "{a};[b]", 'Grüße, "ÿ"', ","]))
address = st.from_regex(r"[a-z0-9._%+-]{1,12}@[a-z0-9-]{1,10}\.(com|de|org)", fullmatch=True)


@st.composite
def tracking_rows(draw):
    recipients = draw(st.lists(address, min_size=1, max_size=4))
    return {
        "message_subject": draw(hostile),
        "source_context": draw(hostile),
        "custom_data": draw(hostile),
        "reference": draw(hostile),
        "connector_id": draw(hostile),
        "recipient_address": ";".join(recipients),
        "recipient_count": str(len(recipients)),
        "recipient_status": ";".join(
            draw(
                st.sampled_from(
                    ["250 2.1.5 Recipient OK", "[{LED=451 4.4.0 x; y};{FQDN=a,b}]", "550 5.1.1 no"]
                )
            )
            for _ in recipients
        ),
        "sender_address": draw(address),
    }


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(tracking_rows(), min_size=1, max_size=8))
def test_rows_round_trip(tmp_path_factory, values):
    folder = tmp_path_factory.mktemp("rt")
    rows = [row(i, **v) for i, v in enumerate(values)]
    log = write_log(folder / "EX01" / "MSGTRK2026030210-1.LOG", rows)
    summary = ingest([log], folder / "store")
    assert summary.quarantined == 0
    got = sorted(rows_of(folder / "store"), key=lambda r: r["line"])
    assert len(got) == len(rows)
    for want, have in zip(rows, got, strict=True):
        for field in (
            "message-subject",
            "source-context",
            "custom-data",
            "reference",
            "connector-id",
            "sender-address",
        ):
            assert have[field.replace("-", "_")] == want[field], field
        assert have["recipient_address"] == want["recipient-address"].split(";")
        assert ";".join(have["recipient_status"]) == want["recipient-status"]
        assert len(have["recipient_status"]) == len(have["recipient_address"])
