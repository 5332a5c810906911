"""`stockpipe report` rendered by headless Chromium with no network: the page draws its pictures.

Chromium is Debian's ``chromium`` package; the fixture installs it with apt-get when it is missing (CI
runs as root on a fresh machine) and skips with the reason only where that is impossible.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockpipe.objectstore import LocalObjectStore
from stockpipe.pricestore import PriceStore
from tests.local.harness import clean_env

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--proxy-server=http://127.0.0.1:9",  # any fetch from the network fails: the page must not need one
]


def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    found = _find_chromium()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("headless Chromium is not installed and apt-get cannot install it here (not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"])
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            pytest.skip(f"`{' '.join(step)}` failed, so Chromium is unavailable: {done.stderr[-300:]}")
    found = _find_chromium()
    if not found:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return found


def render(
    chromium: str, page: Path, tmp: Path, *, what: str, size: str = "1200,1600"
) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{what}"
    profile.mkdir()
    extra = ["--screenshot=" + str(tmp / f"{what}.png")] if what == "screenshot" else ["--dump-dom"]
    return subprocess.run(
        [
            chromium,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            "--virtual-time-budget=10000",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp,
    )


def png_pixels(path: Path) -> Iterator[tuple[int, ...]]:
    """Decode an 8-bit non-interlaced RGB/RGBA PNG (what Chromium writes) with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    assert (depth, interlace) == (8, 0)
    assert colour in (2, 6)
    channels = 3 if colour == 2 else 4
    idat, offset = b"", 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            idat += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        previous = line
        for x in range(0, stride, channels):
            yield tuple(line[x : x + 3])


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    """A simulated dataset with a real gap (one year missing a few rows) and a stale ticker."""
    work = tmp_path_factory.mktemp("report")

    def stockpipe(*args: str) -> None:
        command = [str(Path(sys.executable).with_name("stockpipe")), *args]
        done = subprocess.run(
            command, cwd=work, env=clean_env(), capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr

    tickers = "AAPL,MSFT,GOOGL,AMZN,BRK-B,JPM,SPY"
    stockpipe(
        "run", "--data-dir", "data", "--tickers", tickers, "--start-date", "2015-01-02", "--chunk-months", "0"
    )
    _drop_rows(work / "data", "MSFT", 2019, keep=lambda i: i % 40 != 7)  # 7 missing trading days
    assert PriceStore(LocalObjectStore(work / "data")).read_ticker("MSFT").num_rows > 2000  # still readable
    stockpipe("report", "--data-dir", "data", "--output", "out/report.html")
    return work / "out" / "report.html"


def _drop_rows(data: Path, ticker: str, year: int, keep) -> None:
    """A gap as a Tiingo outage leaves it: the same object, a few trading days without a row."""
    import pyarrow.parquet as pq

    path = data / "prices" / "daily" / f"ticker={ticker}" / f"year={year}" / "data.parquet"
    table = pq.read_table(path)
    mask = [keep(i) for i in range(table.num_rows)]
    pq.write_table(table.filter(mask), path)


def test_the_report_is_self_contained(report_page: Path) -> None:
    page = report_page.read_text()
    assert "<script src=" not in page  # plotly.js is inlined: nothing to fetch
    assert "<link " not in page
    assert page.count("Plotly.newPlot") == 2 + 7  # coverage, freshness, one chart per ticker


def test_chromium_draws_the_heatmap_freshness_and_price_charts(chromium, report_page: Path, tmp_path) -> None:
    dom = render(chromium, report_page, tmp_path, what="dom")
    assert dom.returncode == 0, dom.stderr[-500:]
    html = dom.stdout
    assert html.count('class="main-svg"') >= 2 * 9  # plotly drew every figure (two svg layers each)
    assert "heatmaplayer" in html
    assert "MSFT" in html
    assert "2019" in html
    shot = render(chromium, report_page, tmp_path, what="screenshot")
    assert shot.returncode == 0, shot.stderr[-500:]
    pixels = list(png_pixels(tmp_path / "screenshot.png"))
    colours = set(pixels)
    non_white = sum(1 for p in pixels if p != (255, 255, 255)) / len(pixels)
    assert len(colours) > 200, "the screenshot is nearly uniform: nothing was drawn"
    assert non_white > 0.25
    red = sum(1 for r, g, b in pixels if r > 180 and g < 120 and b < 100)
    green = sum(1 for r, g, b in pixels if g > 130 and r < 80 and b < 100)
    assert green > 1000  # complete ticker-years
    assert red > 20  # the gap in MSFT 2019 (and split markers)
    docs = os.environ.get("STOCKPIPE_REPORT_PNG")
    if docs:  # `STOCKPIPE_REPORT_PNG=docs/report.png pytest ...` refreshes the README's screenshot
        shutil.copyfile(tmp_path / "screenshot.png", ROOT / docs)
