"""The simulator's synthetic market: prices as a pure function of (seed, ticker, day).

Nothing is stored per row, so any request costs O(rows requested). Corporate actions (built-in splits
and quarterly dividends, plus events added while the simulator runs) back-adjust the ``adj*`` columns of
the whole history, as Tiingo does. No HTTP here: ``server.py`` puts a Tiingo facade in front of this.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from stockpipe.calendar import is_trading_day, previous_trading_day, trading_days
from stockpipe.tickers import normalize_ticker

DEFAULT_TICKERS: dict[str, date] = {
    "AAPL": date(1980, 12, 12),
    "MSFT": date(1986, 3, 13),
    "GOOGL": date(2004, 8, 19),
    "AMZN": date(1997, 5, 15),
    "NVDA": date(1999, 1, 22),
    "META": date(2012, 5, 18),
    "TSLA": date(2010, 6, 29),
    "BRK-B": date(1996, 5, 9),
    "JPM": date(1983, 12, 30),
    "SPY": date(1993, 1, 29),
    "QQQ": date(1999, 3, 10),
    "IBM": date(1962, 1, 2),
    "KO": date(1962, 1, 2),
    "XOM": date(1970, 1, 2),
    "WMT": date(1972, 8, 25),
    "INTC": date(1980, 3, 17),
    "AMD": date(1980, 3, 17),
    "NFLX": date(2002, 5, 23),
    "V": date(2008, 3, 19),
}

_NAMES: dict[str, tuple[str, str]] = {
    "AAPL": ("Apple Inc", "NASDAQ"),
    "MSFT": ("Microsoft Corp", "NASDAQ"),
    "GOOGL": ("Alphabet Inc - Class A", "NASDAQ"),
    "AMZN": ("Amazon.com Inc", "NASDAQ"),
    "NVDA": ("NVIDIA Corp", "NASDAQ"),
    "META": ("Meta Platforms Inc", "NASDAQ"),
    "TSLA": ("Tesla Inc", "NASDAQ"),
    "BRK-B": ("Berkshire Hathaway Inc - Class B", "NYSE"),
    "JPM": ("JPMorgan Chase & Co", "NYSE"),
    "SPY": ("SPDR S&P 500 ETF Trust", "NYSE ARCA"),
    "QQQ": ("Invesco QQQ Trust", "NASDAQ"),
    "IBM": ("International Business Machines Corp", "NYSE"),
    "KO": ("Coca-Cola Co", "NYSE"),
    "XOM": ("Exxon Mobil Corp", "NYSE"),
    "WMT": ("Walmart Inc", "NYSE"),
    "INTC": ("Intel Corp", "NASDAQ"),
    "AMD": ("Advanced Micro Devices Inc", "NASDAQ"),
    "NFLX": ("Netflix Inc", "NASDAQ"),
    "V": ("Visa Inc", "NYSE"),
}

# (has splits, pays dividends) for the well-known symbols, so tests and demos see both kinds of event;
# any other ticker decides from its hash.
_ACTIONS: dict[str, tuple[bool, bool]] = {
    "AAPL": (True, True),
    "MSFT": (True, True),
    "GOOGL": (True, False),
    "AMZN": (True, False),
    "NVDA": (True, True),
    "META": (False, True),
    "TSLA": (True, False),
    "BRK-B": (True, False),
    "JPM": (True, True),
    "SPY": (False, True),
}

GENERATED_FIRST_DATE = date(2000, 1, 3)

# Keys of ranged rows, in the order Tiingo sends them (see the reference); latest bars use sorted keys.
ROW_KEYS = (
    "date",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "adjOpen",
    "adjHigh",
    "adjLow",
    "adjClose",
    "adjVolume",
    "divCash",
    "splitFactor",
)

_EVENT_CACHE_SIZE = 4096
_SPLIT_FACTORS = (2.0, 2.0, 3.0, 4.0, 1.5)


@dataclass(frozen=True)
class _Params:
    """Per-ticker shape of the synthetic series, derived from (seed, ticker) only."""

    first: date
    p0: float
    growth: float
    amplitude: float
    period: float
    phase: float
    splits: tuple[tuple[date, float], ...]  # built-in splits (any date; only those <= today apply)
    dividend_months: tuple[int, ...]  # empty when the ticker pays no dividends
    quarterly_yield: float
    volume_base: float
    day_hash: Any  # blake2b already fed with (seed, ticker); see _day_uniforms


def _uniforms(*parts: object, n: int = 5) -> tuple[float, ...]:
    """n deterministic floats in [0, 1) from a stable hash (Python's hash() is salted per process)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=4 * n).digest()
    return tuple(v / 4294967296.0 for v in struct.unpack(f"<{n}I", digest))


_DAY = struct.Struct("<i")
_FIVE = struct.Struct("<5I")


def _day_uniforms(prefix: Any, ordinal: int) -> tuple[float, ...]:
    """Five floats for one day; `prefix` is a pre-fed blake2b of (seed, ticker), copied per day (fast)."""
    h = prefix.copy()
    h.update(_DAY.pack(ordinal))
    return tuple(v / 4294967296.0 for v in _FIVE.unpack(h.digest()))


def _next_trading_day(day: date) -> date:
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


@lru_cache(maxsize=65536)
def _params(seed: int, ticker: str, first: date) -> _Params:
    u = _uniforms(seed, ticker, "params", n=12)
    first_day = _next_trading_day(first)
    splits: list[tuple[date, float]] = []
    has_splits, has_dividends = _ACTIONS.get(ticker, (u[5] < 0.5, u[7] < 0.6))
    if has_splits:
        interval = 5.0 + 4.0 * u[6]  # years between splits
        for k in range(1, 30):
            day = first_day + timedelta(days=round(k * interval * 365.25))
            if day.year > 2100:
                break
            factor = _SPLIT_FACTORS[int(_uniforms(seed, ticker, "split", k, n=1)[0] * len(_SPLIT_FACTORS))]
            splits.append((_next_trading_day(day), factor))
    months: tuple[int, ...] = ()
    if has_dividends:
        m0 = 1 + int(u[8] * 3)
        months = (m0, m0 + 3, m0 + 6, m0 + 9)
    return _Params(
        first=first_day,
        p0=15.0 + 135.0 * u[0],
        growth=0.14 * u[1],
        amplitude=0.05 + 0.2 * u[2],
        period=2.0 + 4.0 * u[3],
        phase=2 * math.pi * u[4],
        splits=tuple(splits),
        dividend_months=months,
        quarterly_yield=0.002 + 0.006 * u[9],
        volume_base=1e5 + 5e7 * u[10] ** 2,
        day_hash=hashlib.blake2b(f"{seed}|{ticker}|day|".encode(), digest_size=20),
    )


def _raw_bar(seed: int, ticker: str, p: _Params, day: date) -> tuple[float, float, float, float, int]:
    """Unadjusted (open, high, low, close, volume): a pure function of (seed, ticker, day)."""
    years = (day.toordinal() - p.first.toordinal()) / 365.25
    level = (
        p.p0
        * math.exp(p.growth * years)
        * (1.0 + p.amplitude * math.sin(2 * math.pi * years / p.period + p.phase))
    )
    for split_day, factor in p.splits:
        if split_day > day:
            break
        level /= factor  # the share price drops on each split; the company's value does not
    level = max(level, 1.0)
    u = _day_uniforms(p.day_hash, day.toordinal())
    close = round(level * (1.0 + 0.03 * (u[0] - 0.5)), 2)
    open_ = round(level * (1.0 + 0.02 * (u[1] - 0.5)), 2)
    # round() is monotone, so high >= max(open, close) >= min(open, close) >= low survives rounding.
    high = round(max(open_, close) * (1.0 + 0.015 * u[2]), 2)
    low = round(min(open_, close) * (1.0 - 0.015 * u[3]), 2)
    volume = int(p.volume_base * (0.5 + u[4]))
    return open_, high, low, close, volume


class _Adjustments(NamedTuple):
    """Corporate actions up to `today` and the suffix products that back-adjust earlier rows."""

    events: dict[date, tuple[float, float]]  # day -> (split factor, dividend cash)
    days: list[date]  # sorted event days
    price_after: list[float]  # price_after[i] = product of price multipliers of events[i:]
    volume_after: list[float]  # volume_after[i] = product of split factors of events[i:]


class Market:
    """The tickers a simulator knows and their synthetic history; thread-safe; ``today`` is passed in."""

    def __init__(
        self,
        *,
        tickers: Mapping[str, date] | None = None,
        generated_prefix: str | None = "SIM",
        seed: int = 0,
    ) -> None:
        self.seed = seed
        self._tickers = {
            normalize_ticker(t): d for t, d in (DEFAULT_TICKERS if tickers is None else tickers).items()
        }
        self._generated = (
            re.compile(re.escape(generated_prefix.upper()) + r"\d+") if generated_prefix else None
        )
        self._lock = threading.Lock()
        self._extra_events: dict[str, dict[date, tuple[float, float]]] = {}
        self._events_version = 0
        self._adjust_cache: OrderedDict[tuple[str, date, int], _Adjustments] = OrderedDict()

    def is_known(self, symbol: str) -> bool:
        return symbol in self._tickers or bool(self._generated and self._generated.fullmatch(symbol))

    def known(self, ticker: str) -> str:
        """The normalized symbol; KeyError for a ticker this market does not simulate."""
        symbol = normalize_ticker(ticker)
        if not self.is_known(symbol):
            raise KeyError(f"unknown simulated ticker {symbol!r}")
        return symbol

    def first(self, symbol: str) -> date:
        """The first date of a known symbol's history (before the first trading day is applied)."""
        return self._tickers.get(symbol, GENERATED_FIRST_DATE)

    def add_event(self, ticker: str, day: date, *, split_factor: float = 1.0, div_cash: float = 0.0) -> None:
        """A new corporate action on a trading day; adj* of all earlier rows change, as on Tiingo."""
        symbol = self.known(ticker)
        if not is_trading_day(day):
            raise ValueError(f"{day} is not a trading day")
        if not split_factor > 0 or div_cash < 0:
            raise ValueError("split_factor must be > 0 and div_cash >= 0")
        with self._lock:
            events = self._extra_events.setdefault(symbol, {})
            split, cash = events.get(day, (1.0, 0.0))
            events[day] = (split * split_factor, cash + div_cash)
            self._events_version += 1
            self._adjust_cache.clear()

    def _adjustments(self, symbol: str, today: date) -> _Adjustments:
        with self._lock:
            key = (symbol, today, self._events_version)
            cached = self._adjust_cache.get(key)
            if cached is not None:
                self._adjust_cache.move_to_end(key)
                return cached
            extra = dict(self._extra_events.get(symbol, {}))
        p = _params(self.seed, symbol, self.first(symbol))
        events: dict[date, tuple[float, float]] = {}
        for day, factor in p.splits:
            if day <= today:
                events[day] = (factor, 0.0)
        for year in range(p.first.year + 1, today.year + 1):
            for month in p.dividend_months:
                day = _next_trading_day(date(year, month, 10))
                if day > today:
                    break
                prev_close = _raw_bar(self.seed, symbol, p, previous_trading_day(day))[3]
                split, _ = events.get(day, (1.0, 0.0))
                events[day] = (split, round(prev_close * p.quarterly_yield, 4))
        for day, (split, cash) in extra.items():
            if p.first <= day <= today:
                old_split, old_cash = events.get(day, (1.0, 0.0))
                events[day] = (old_split * split, old_cash + cash)
        days = sorted(events)
        price_after = [1.0] * (len(days) + 1)
        volume_after = [1.0] * (len(days) + 1)
        for i in range(len(days) - 1, -1, -1):
            split, cash = events[days[i]]
            multiplier = 1.0 / split
            if cash and days[i] > p.first:
                # CRSP-style: the dividend's share of the (split-adjusted) previous close.
                prev_close = _raw_bar(self.seed, symbol, p, previous_trading_day(days[i]))[3] / split
                multiplier *= max(1.0 - cash / prev_close, 0.01)
            price_after[i] = price_after[i + 1] * multiplier
            volume_after[i] = volume_after[i + 1] * split
        result = _Adjustments(events, days, price_after, volume_after)
        with self._lock:
            self._adjust_cache[key] = result
            while len(self._adjust_cache) > _EVENT_CACHE_SIZE:
                self._adjust_cache.popitem(last=False)
        return result

    def rows(
        self, symbol: str, start: date, end: date, *, today: date, float_volume: bool = False
    ) -> list[dict[str, Any]]:
        """The rows of a ranged prices request for [start, end] as seen on ``today`` (Tiingo key order)."""
        p = _params(self.seed, symbol, self.first(symbol))
        start, end = max(start, p.first), min(end, today)
        if start > end:
            return []
        adj = self._adjustments(symbol, today)
        index = bisect_right(adj.days, start)
        rows: list[dict[str, Any]] = []
        for day in trading_days(start, end):
            while index < len(adj.days) and adj.days[index] <= day:
                index += 1
            open_, high, low, close, volume = _raw_bar(self.seed, symbol, p, day)
            m = adj.price_after[index]
            split, cash = adj.events.get(day, (1.0, 0.0))
            rows.append(
                {
                    "date": f"{day.isoformat()}T00:00:00.000Z",
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": float(volume) if float_volume else volume,
                    "adjOpen": open_ * m,
                    "adjHigh": high * m,
                    "adjLow": low * m,
                    "adjClose": close * m,
                    "adjVolume": volume * adj.volume_after[index],
                    "divCash": cash,
                    "splitFactor": split,
                }
            )
        return rows

    def latest(self, symbol: str, *, today: date, float_volume: bool = False) -> list[dict[str, Any]]:
        """The latest bar (Tiingo's no-date request): the last trading day up to ``today``."""
        p = _params(self.seed, symbol, self.first(symbol))
        if today < p.first:
            return []
        day = today if is_trading_day(today) else previous_trading_day(today)
        rows = self.rows(symbol, day, day, today=today, float_volume=float_volume)
        for row in rows:
            row["date"] = f"{row['date'][:10]}T00:00:00+00:00"
        return [dict(sorted(row.items())) for row in rows]

    def metadata(self, symbol: str, *, today: date) -> dict[str, Any]:
        """Tiingo's metadata object for ``symbol`` as seen on ``today``."""
        p = _params(self.seed, symbol, self.first(symbol))
        name, exchange = _NAMES.get(symbol, (f"{symbol} Simulated Corp", "NYSE"))
        has_data = p.first <= today
        last = today if is_trading_day(today) else previous_trading_day(today)
        return {
            "ticker": symbol.lower(),
            "name": name,
            "exchangeCode": exchange,
            "description": f"{name} (simulated by stock-pipeline's Tiingo simulator).",
            "startDate": p.first.isoformat() if has_data else None,
            "endDate": last.isoformat() if has_data else None,
        }
