"""The HTML evidence report in a real browser: headless Chromium renders it to a PNG
and prints it to an A4 PDF, with no console message and no network request, and the
print stylesheet starts each section on a new page. The detectors are tested too, on
pages built to trip them, so these checks cannot pass by seeing nothing."""

from __future__ import annotations

import os
import struct
import unicodedata
import zlib
from pathlib import Path

import pytest

import browser
from conftest import run
from regbook.core import fs
from regbook.core.ids import ModelRef
from regbook.core.workspace import Workspace
from regbook.registry.snapshot import open_registry
from regbook.reports import evidence as reports
from test_reports import REPORT_TIME, build_production

pytestmark = pytest.mark.skipif(
    browser.CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed (.ci/run installs it in CI)",
)

SECTIONS = ["Artefact integrity", "Provenance chain", "Metrics and validation gates",
            "Stage history and approvals", "Archive and retention", "Verify findings"]  # fmt: skip
A4 = (595.28, 841.89)  # points
EXTERNAL = (
    '<link rel="stylesheet" href="http://styles.example.com/report.css">'
    '<img src="https://images.example.org/logo.png" alt="">'
)
BROKEN_PAGE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>broken</title>{EXTERNAL}</head>
<body><p>A page that does everything the report must not.</p>
<script>console.error("detector check: console.error"); null.boom();</script>
</body></html>
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """credit-risk@1 in Production (test_reports' workspace) and its HTML report."""
    base = tmp_path_factory.mktemp("browser-report")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("REGBOOK_WORKSPACE", raising=False)
        mp.delenv("REGBOOK_KEY", raising=False)
        mp.setattr(fs, "utc_now", lambda: REPORT_TIME)
        root = build_production(base).root
        out = base / "evidence.html"
        result = run(root, "report", "evidence", "credit-risk@1", "-o", str(out))
        assert result.exit_code == 0, result.output
        data = reports.evidence_data(
            open_registry(Workspace.load(root)), ModelRef.parse("credit-risk@1")
        )
    return data, out


@pytest.fixture(scope="module")
def rendered(report: tuple[dict, Path]) -> browser.Rendering:
    _, html = report
    return browser.render(html, html.parent / "render")


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> browser.Rendering:
    folder = tmp_path_factory.mktemp("browser-broken")
    page = folder / "broken.html"
    page.write_text(BROKEN_PAGE, encoding="utf-8")
    return browser.render(page, folder / "render")


def pdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader

    # NFKC undoes the ligatures the print fonts use ("ﬁ" in "findings")
    return [unicodedata.normalize("NFKC", page.extract_text()) for page in PdfReader(path).pages]


def squeeze(text: str) -> str:
    """Text without whitespace: long codes wrap anywhere in the printed table."""
    return "".join(text.split())


def png_size_and_pixels(path: Path) -> tuple[int, int, bytes]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, at = b"", 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            idat += data[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, zlib.decompress(idat)


# --- the report -------------------------------------------------------------------------


def test_report_has_no_console_message(rendered: browser.Rendering):
    assert rendered.console == []


def test_report_makes_no_network_request(rendered: browser.Rendering):
    assert rendered.requests == []
    assert rendered.loads == []


def test_screenshot_is_a_real_picture(rendered: browser.Rendering):
    width, height, pixels = png_size_and_pixels(rendered.png)
    assert (width, height) == browser.WINDOW
    assert rendered.png.stat().st_size > 20_000
    assert len(set(pixels)) > 16, "the screenshot is (nearly) one colour"


def test_pdf_is_a4_and_carries_the_identity_and_approvers(
    rendered: browser.Rendering, report: tuple[dict, Path]
):
    from pypdf import PdfReader

    data, _ = report
    pages = PdfReader(rendered.pdf).pages
    assert len(pages) > 1
    for page in pages:
        size = (float(page.mediabox.width), float(page.mediabox.height))
        assert size == pytest.approx(A4, abs=1.5)
    text = squeeze("".join(pdf_pages(rendered.pdf)))
    assert data["identity"]["composite_id"] in text
    principals = [a["principal"] for h in data["history"] for a in h["approvals"]]
    assert principals == ["alice@example.com", "gina@example.com"]
    for principal in principals:
        assert principal in text


def test_each_section_starts_a_new_page(rendered: browser.Rendering):
    pages = pdf_pages(rendered.pdf)
    assert "Identity" in pages[0] and "No problems found" in pages[0]
    starts = []
    for heading in SECTIONS:
        found = [i for i, text in enumerate(pages) if text.lstrip().startswith(heading)]
        assert len(found) == 1, f"{heading!r} does not open exactly one page"
        starts.append(found[0])
    assert starts == sorted(starts) and starts[0] == 1
    assert len(set(starts)) == len(SECTIONS)


# --- the detectors ----------------------------------------------------------------------


def test_detector_sees_console_errors_and_exceptions(broken: browser.Rendering):
    errors = [text for level, text in broken.problems if level == "error"]
    assert "detector check: console.error" in errors
    assert any("TypeError" in text and "boom" in text for text in errors), errors


def test_detector_sees_every_external_request(broken: browser.Rendering):
    assert "GET http://styles.example.com/report.css" in broken.requests
    assert "CONNECT images.example.org:443" in broken.requests
    assert sorted(broken.loads) == [
        "http://styles.example.com/report.css", "https://images.example.org/logo.png"]  # fmt: skip
    assert not [r for r in broken.background if "example." in r]


def test_content_security_policy_blocks_external_loads(report: tuple[dict, Path], tmp_path: Path):
    """The same references slipped into the report are refused by its own policy:
    nothing reaches the network, and the browser says why."""
    _, html = report
    text = html.read_text(encoding="utf-8")
    tampered = tmp_path / "tampered.html"
    tampered.write_text(text.replace("<body>", "<body>" + EXTERNAL, 1), encoding="utf-8")
    result = browser.render(tampered, tmp_path / "render")
    assert result.requests == []
    blocked = [t for level, t in result.problems if "Content Security Policy" in t]
    assert len(blocked) == 2, result.console


# --- the other HTML reports -------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("card", "credit-risk@1"), ["Model card: credit-risk@1", "Intended use", "Owners"]),
        (("registry",), ["Model registry description", "Production versions", "ci@example.com"]),
    ],
)
def test_card_and_registry_render_cleanly(
    report: tuple[dict, Path], tmp_path: Path, command: tuple[str, ...], expected: list[str]
):
    """The model card and the registry description share the evidence report's layout:
    the same checks hold, in one browser launch each."""
    data, evidence = report
    root = evidence.parent / "ws"
    html = tmp_path / f"{command[0]}.html"
    result = run(root, "report", *command, "-o", str(html))
    assert result.exit_code == 0, result.output
    rendered = browser.render(html, tmp_path / "render")
    assert rendered.console == [] and rendered.requests == [] and rendered.loads == []
    width, height, pixels = png_size_and_pixels(rendered.png)
    assert (width, height) == browser.WINDOW and len(set(pixels)) > 16
    text = squeeze("".join(pdf_pages(rendered.pdf)))
    for words in [*expected, data["identity"]["composite_id"]]:
        assert squeeze(words) in text, words
