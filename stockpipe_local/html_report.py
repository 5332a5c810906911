"""`stockpipe report`: one self-contained HTML page about a data directory, drawn with plotly.

Three pictures: a ticker x year heatmap of missing NYSE trading days (where the gaps are), freshness per
ticker (last stored date against the last trading day whose bar is due), and per ticker the adjusted
close with its split and dividend days marked. plotly.js is inlined once, so the file opens with no
network; plotly is local tooling only (never in the Lambda images).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from stockpipe.calendar import trading_days_after
from stockpipe.errors import StockpipeError, clean_message
from stockpipe.layout import PRICES_PREFIX
from stockpipe.objectstore import LocalObjectStore
from stockpipe.pricestore import PriceStore
from stockpipe_local.report import expected_last_day, missing_trading_days

SPLIT_COLOUR = "#d62728"
DIVIDEND_COLOUR = "#2ca02c"
LINE_COLOUR = "#1f77b4"


@dataclass(frozen=True)
class TickerSeries:
    ticker: str
    dates: list[date]
    adj_close: list[float | None]
    splits: list[tuple[date, float]]
    dividends: list[tuple[date, float]]
    problem: str = ""


def stored_tickers(data_dir: Path) -> list[str]:
    root = data_dir / PRICES_PREFIX
    names = (p.name.removeprefix("ticker=") for p in root.glob("ticker=*") if p.is_dir())
    return sorted(names)


def read_series(store: LocalObjectStore, ticker: str) -> TickerSeries:
    try:
        table = PriceStore(store).read_ticker(ticker)
    except (StockpipeError, OSError, ValueError) as exc:  # one unreadable object: a note, not the end
        return TickerSeries(ticker, [], [], [], [], f"store: {clean_message(exc)}")
    dates = table.column("date").to_pylist()
    splits = [
        (d, f) for d, f in zip(dates, table.column("split_factor").to_pylist(), strict=True) if f and f != 1
    ]
    cash = [(d, c) for d, c in zip(dates, table.column("div_cash").to_pylist(), strict=True) if c and c > 0]
    return TickerSeries(ticker, dates, table.column("adj_close").to_pylist(), splits, cash)


def missing_by_year(series: TickerSeries, due: date) -> dict[int, int]:
    """Missing trading days per calendar year, between the first stored date and ``due``."""
    if not series.dates:
        return {}
    missing: dict[int, int] = {year: 0 for year in range(series.dates[0].year, due.year + 1)}
    for day in missing_trading_days(series.dates, series.dates[0], due):
        missing[day.year] += 1
    return missing


def trading_days_behind(series: TickerSeries, due: date) -> int | None:
    return trading_days_after(series.dates[-1], due) if series.dates else None


def write_report(
    data_dir: Path, output: Path, *, tickers: Sequence[str] | None = None, now: datetime | None = None
) -> Path:
    """Write the page to ``output`` (parents created) and return its path."""
    store = LocalObjectStore(data_dir)
    names = list(tickers) if tickers else stored_tickers(data_dir)
    due = expected_last_day(None if now is None else now.date())
    all_series = [read_series(store, t) for t in names]
    page = _page(data_dir, all_series, due, now or datetime.now(UTC))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(output)
    return output


def _page(data_dir: Path, all_series: list[TickerSeries], due: date, now: datetime) -> str:
    figures = [_coverage(all_series, due), _freshness(all_series, due)]
    figures += [_prices(s) for s in all_series if s.dates]
    divs = [
        pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False})
        for fig in figures
    ]
    problems = [
        f"<li>{html.escape(s.ticker)}: {html.escape(s.problem)}</li>" for s in all_series if s.problem
    ]
    notes = f"<h2>Problems</h2><ul>{''.join(problems)}</ul>" if problems else ""
    title = f"stock-pipeline report: {html.escape(str(data_dir))}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}}h1{{font-size:1.4em}}
.meta{{color:#666}}</style>
<script>{get_plotlyjs()}</script></head>
<body><h1>{title}</h1>
<p class="meta">{len(all_series)} tickers; last trading day due: {due.isoformat()};
written {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC.
Missing days count NYSE trading days without a stored row.</p>
{notes}
{"".join(divs)}
</body></html>
"""


def _coverage(all_series: list[TickerSeries], due: date) -> go.Figure:
    by_ticker = {s.ticker: missing_by_year(s, due) for s in all_series}
    years = sorted({y for counts in by_ticker.values() for y in counts}) or [due.year]
    tickers = [s.ticker for s in all_series]
    z = [[by_ticker[t].get(y) for y in years] for t in tickers]
    text = [["" if v is None else str(v) for v in row] for row in z]
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(y) for y in years],
            y=tickers,
            text=text,
            texttemplate="%{text}",
            colorscale=[[0.0, "#1a9850"], [0.02, "#a6d96a"], [0.2, "#fee08b"], [1.0, "#d73027"]],
            zmin=0,
            zmax=max(10, max((v for row in z for v in row if v is not None), default=0)),
            colorbar={"title": {"text": "missing"}},
            hovertemplate="%{y} %{x}: %{z} missing trading days<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    figure.update_layout(
        title="Coverage: missing NYSE trading days per ticker and year",
        height=160 + 36 * len(tickers),
        margin={"l": 70, "r": 20, "t": 50, "b": 40},
        yaxis={"autorange": "reversed"},
    )
    return figure


def _freshness(all_series: list[TickerSeries], due: date) -> go.Figure:
    behind = [trading_days_behind(s, due) for s in all_series]
    labels = [
        "no data"
        if b is None
        else (f"fresh ({s.dates[-1]})" if b == 0 else f"{b} behind (last {s.dates[-1]})")
        for s, b in zip(all_series, behind, strict=True)
    ]
    colours = ["#999999" if b is None else ("#1a9850" if b == 0 else "#d73027") for b in behind]
    longest = max((b for b in behind if b is not None), default=0)
    figure = go.Figure(
        go.Bar(
            x=[0.1 if b == 0 else (b or 0) for b in behind],  # a sliver, so a fresh ticker shows green
            y=[s.ticker for s in all_series],
            orientation="h",
            marker_color=colours,
            text=labels,
            textposition="outside",
            hovertemplate="%{y}: %{text}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"Freshness: trading days between the last stored date and {due}",
        height=140 + 32 * len(all_series),
        margin={"l": 70, "r": 20, "t": 50, "b": 40},
        yaxis={"autorange": "reversed"},
        xaxis={"title": "trading days behind", "range": [0, max(5, longest * 1.6)]},
    )
    return figure


def _prices(series: TickerSeries) -> go.Figure:
    close = dict(zip(series.dates, series.adj_close, strict=True))
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=series.dates,
            y=series.adj_close,
            mode="lines",
            name="adjusted close",
            line={"color": LINE_COLOUR},
        )
    )
    split_marker = {"color": SPLIT_COLOUR, "size": 12, "symbol": "triangle-up"}
    events = [
        ("dividend", series.dividends, {"color": DIVIDEND_COLOUR, "size": 6}, "dividend {:g}"),
        ("split", series.splits, split_marker, "split {:g}:1"),
    ]
    for name, dated, marker, label in events:
        if dated:
            figure.add_trace(
                go.Scatter(
                    x=[d for d, _ in dated],
                    y=[close[d] for d, _ in dated],
                    mode="markers",
                    name=name,
                    marker=marker,
                    text=[label.format(value) for _, value in dated],
                    hovertemplate="%{x}: %{text}<extra></extra>",
                )
            )
    figure.update_layout(
        title=f"{series.ticker}: adjusted close ({series.dates[0]} .. {series.dates[-1]})",
        height=320,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        yaxis={"title": "USD"},
    )
    return figure
