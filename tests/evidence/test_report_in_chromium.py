"""The HTML report as a browser shows it: headless Chromium loads it offline and finds the timeline and tables."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from dr_runbooks.evidence.report import build_report, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")


def _dump_dom(html_path, profile_dir) -> str:
    """The DOM after Chromium parsed and laid out the page (flags: headless, as root, nothing fetched in background)."""
    completed = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile_dir}", "--dump-dom",
         html_path.as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return completed.stdout


def test_chromium_shows_the_timeline_and_the_tables(sealed_chain, tmp_path):
    report = build_report(sealed_chain, sealed_chain, [], 0.9995, datetime(2026, 11, 20, tzinfo=UTC))
    dom = _dump_dom(write_report(report, tmp_path / "reports").html, tmp_path / "profile")
    assert len(re.findall(r'<svg class="timeline"', dom)) == 2
    assert len(re.findall(r'<rect class="step ', dom)) == 4
    for table in ('id="runs"', 'class="objectives"', 'class="verifications"', 'id="budget"'):
        assert f"<table {table}" in dom
    assert re.search(r'<section class="hipaa" id="hipaa-E">', dom)
