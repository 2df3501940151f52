"""Prices: measured or modelled seconds times the prices in conf/cost/, and a served
model's tokens times its per-token prices (Price, model.price).

    build cost         = build seconds / 3600 * price per hour   (training or indexing;
                         the seconds the build took when computed, also on a cache hit)
    cost per 1k queries = predict seconds per query * 1000 / 3600 * price per hour
    break-even volume  = (build_A - build_B) / (per-query_B - per-query_A) queries: past it,
                         A's higher build cost has been repaid by cheaper queries
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError


def hardware_name(cost_cfg: Mapping[str, Any]) -> str:
    """The key of usd_per_hour a run is priced at: cost.hardware, or for `auto` the GPU in
    use matched against the keys (longest first), else `cpu`."""
    import torch  # here, not at import: the report reads prices without torch

    prices = cost_cfg.get("usd_per_hour") or {}
    hw = cost_cfg.get("hardware", "auto")
    if hw != "auto":
        if hw not in prices:
            raise ConfigError(f"cost.hardware '{hw}' has no price in cost.usd_per_hour "
                             f"(known: {', '.join(prices)})")
        return hw
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0).upper()
        for key in sorted(prices, key=len, reverse=True):
            if key != "cpu" and key.upper() in gpu:
                return key
        return f"unpriced GPU: {torch.cuda.get_device_name(0)}"
    return "cpu"


def run_prices(cost_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What a run records under metrics.json -> cost."""
    hw = hardware_name(cost_cfg)
    price = (cost_cfg.get("usd_per_hour") or {}).get(hw)
    for name, p in (cost_cfg.get("api") or {}).items():  # the schema of a served model's price
        api = Price.from_config(p, f"cost.api.{name}")
        if api.input_per_mtok is None or api.output_per_mtok is None:
            raise ConfigError(f"cost.api.{name}: give input_per_mtok and output_per_mtok (USD "
                              "per million tokens; conf/cost/api/*.yaml are examples)")
    if price is not None and price < 0:
        raise ConfigError(f"cost.usd_per_hour.{hw} must be >= 0, got {price}")
    return {"hardware": hw, "usd_per_hour": price, "api": dict(cost_cfg.get("api") or {})}


def usd(seconds: float | None, usd_per_hour: float | None) -> float:
    if seconds is None or usd_per_hour is None:
        return math.nan
    return seconds / 3600.0 * usd_per_hour


def break_even(build_a: float, per_query_a: float, build_b: float, per_query_b: float,
               same_within: float = 0.0) -> float:
    """Queries after which A (more to build, cheaper per query) costs less in total than B.
    0 when A is no dearer to build and no dearer per query; inf when A never catches up.
    Per-query costs within `same_within` (a fraction of the larger) count as equal: single
    timing measurements differ by that much without any real difference."""
    if any(math.isnan(x) for x in (build_a, per_query_a, build_b, per_query_b)):
        return math.nan
    if abs(per_query_a - per_query_b) <= same_within * max(per_query_a, per_query_b):
        per_query_a = per_query_b
    if build_a <= build_b and per_query_a <= per_query_b:
        return 0.0
    if per_query_a >= per_query_b:
        return math.inf
    return (build_a - build_b) / (per_query_b - per_query_a)


OLD_API_KEYS = {"input_usd_per_1m": "input_per_mtok", "output_usd_per_1m": "output_per_mtok"}


def api_usd_per_1k(prompt_tokens: float, completion_tokens: float, price: Mapping[str, Any]) -> float:
    """Per 1,000 queries at an API's token prices (Price's fields), from per-query token
    counts. Runs recorded before the two price schemas became one named them
    input_usd_per_1m / output_usd_per_1m: read as the same."""
    p = {OLD_API_KEYS.get(k, k): v for k, v in price.items()}
    return 1000 * (prompt_tokens * p["input_per_mtok"] + completion_tokens * p["output_per_mtok"]) / 1e6


@dataclass(frozen=True)
class Price:
    """What a served model costs: per token (a hosted API) or per hour of the machine serving
    it (a self-hosted endpoint, turned into a cost per query by its measured throughput)."""
    input_per_mtok: float | None = None  # USD per million input tokens
    output_per_mtok: float | None = None
    cached_input_per_mtok: float | None = None  # input the server served from its prompt cache
    price_per_hour: float | None = None  # self-hosted: USD per hour of its GPU(s)
    date: str | None = None  # when the price was read (prices change)
    source: str | None = None  # where it was read

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, where: str = "model.price") -> Price:
        """One schema for every price (a served model's model.price and the hosted-API
        comparison's cost.api.<name>); `where` names the key in errors."""
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: "
                              f"{', '.join(cls.__dataclass_fields__)}")
        price = cls(**cfg)
        for k in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "price_per_hour"):
            v = getattr(price, k)
            if v is not None and (not isinstance(v, int | float) or v < 0):
                raise ConfigError(f"{where}.{k} must be a number >= 0 or null, got {v!r}")
        if price.per_token and price.price_per_hour is not None:
            raise ConfigError(f"{where}: give per-token prices (a hosted API) or "
                              "price_per_hour (a self-hosted endpoint), not both")
        return price

    @property
    def per_token(self) -> bool:
        return self.input_per_mtok is not None or self.output_per_mtok is not None

    def usd(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float | None:
        """USD for these tokens at the per-token prices (None: not priced per token)."""
        if not self.per_token:
            return None
        cached_price = (self.cached_input_per_mtok if self.cached_input_per_mtok is not None
                        else self.input_per_mtok or 0.0)
        return ((input_tokens - cached_input_tokens) * (self.input_per_mtok or 0.0)
                + cached_input_tokens * cached_price
                + output_tokens * (self.output_per_mtok or 0.0)) / 1e6


def run_usd(metrics: Mapping[str, Any]) -> float:
    """What one run cost to produce its score, from its metrics.json: its build and its
    predictions, in modelled seconds where it has them (else measured ones) at its price per
    hour; a served model's predictions at its own price per query. NaN: no price."""
    price = (metrics.get("cost") or {}).get("usd_per_hour")
    modelled = metrics.get("modelled_build_s") is not None \
        and metrics.get("modelled_predict_s") is not None
    build = metrics.get("modelled_build_s") if modelled else metrics.get("build_s")
    predict = metrics.get("modelled_predict_s") if modelled else metrics.get("predict_s")
    if metrics.get("usd_per_query") is not None:  # served: priced per request
        return usd(build or 0.0, price or 0.0) + float(metrics["usd_per_query"]) * int(
            metrics.get("n_examples") or 0)
    if build is None and predict is None:
        return math.nan
    return usd(float(build or 0.0) + float(predict or 0.0), price)
