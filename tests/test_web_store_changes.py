"""`loganalyzer serve` while the store changes under it and when a service manager stops it: a
request whose parts a compaction removed is read again on the new manifest, or answered with
a page saying to reload (503), never a traceback; SIGTERM stops it as Ctrl-C does."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest
from conftest import run_cli
from webserver import serving

from loganalyzer.ingest import ingest
from loganalyzer.store import cache
from loganalyzer.store.compact import compact
from loganalyzer.store.manifest import MANIFEST_FILE
from loganalyzer.synth import generate
from loganalyzer.web import create_app

with warnings.catch_warnings():  # this Starlette would rather have httpx2 (httpx works)
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _small_parts(base: Path) -> tuple[Path, list[str]]:
    """A store ingested one server at a time (parts to compact), and some Message-IDs."""
    generate(base / "logs", servers=2, days=1, messages=20, seed=3)
    for server in sorted((base / "logs").iterdir()):
        if server.is_dir():
            assert ingest([server], base / "store").exit_code == 0
    truth = (base / "logs" / "truth.jsonl").read_text().splitlines()
    ids = sorted({json.loads(t)["message_id"] for t in truth})
    return base / "store", ids


def _get(url: str) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def test_a_request_whose_parts_a_compaction_removed_is_read_again(tmp_path, monkeypatch):
    """The kept manifest still lists the removed parts (a stamp that missed the change): the
    request fails once, and is answered from the manifest read afresh."""
    store, ids = _small_parts(tmp_path)
    # the filesystem tells nothing of the manifest's replacement
    monkeypatch.setattr(cache, "stamp", lambda store, relative=MANIFEST_FILE: ("same",))
    cache.forget()
    client = TestClient(create_app(str(store)), base_url="http://localhost")
    assert client.get("/", params={"q": ids[0]}).status_code == 200
    assert compact(store).partitions
    r = client.get("/trace", params={"id": ids[1]})
    assert r.status_code == 200
    assert ids[1].strip("<>") in r.text
    cache.forget()


def test_a_compaction_under_the_app_gives_a_page_to_reload_then_the_answer(tmp_path):
    store, ids = _small_parts(tmp_path)
    manifest = store / MANIFEST_FILE
    with serving(store) as url:
        assert _get(f"{url}/?q={ids[0]}")[0] == 200
        os.link(manifest, tmp_path / "before")  # the manifest the app has read, file and stat
        done = run_cli("store", "compact", "--store", str(store))
        assert done.returncode == 0, done.stderr
        # the app reads it again: unchanged, it still lists the parts the compaction removed
        os.replace(manifest, tmp_path / "after")
        os.replace(tmp_path / "before", manifest)
        status, text, headers = _get(f"{url}/?sender=*&since=2026-03-02")
        assert status == 503
        assert headers.get("retry-after") == "2"
        assert "The store is being reorganised" in text and "reload the page" in text
        assert "Traceback" not in text
        # the compaction's manifest back: the same page is answered
        os.replace(tmp_path / "after", manifest)
        assert _get(f"{url}/?sender=*&since=2026-03-02")[0] == 200
    assert "Traceback" not in url.stderr


@pytest.mark.skipif(os.name == "nt", reason="Windows delivers no SIGTERM from outside")
def test_sigterm_stops_it_as_ctrl_c_does(tmp_path):
    store, ids = _small_parts(tmp_path)
    with serving(store) as url:
        proc = url.proc
        assert _get(f"{url}/?q={ids[0]}")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert url.stderr.rstrip().endswith("stopped")
    assert "Traceback" not in url.stderr
