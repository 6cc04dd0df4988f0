"""The candle source's part of ``/health`` and ``/health/ready`` (registered in ``apps.py``)."""

from __future__ import annotations

from typing import Any

from features.sources import get_candle_source


def check_market_data() -> dict[str, Any]:
    source = get_candle_source()
    inner = getattr(source, "source", source)
    if hasattr(inner, "ping"):
        inner.ping()
        return {"status": "ok", "source": "upstream"}
    symbols = source.symbols() or []
    for symbol in symbols:
        source.get_candles(symbol, 1)
    return {"status": "ok", "source": source.name, "symbols": symbols}
