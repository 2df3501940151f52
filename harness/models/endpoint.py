"""HTTP to an OpenAI-compatible endpoint: concurrent requests, retries, rate limits and an
on-disk response cache (harness.models.served builds the requests and reads the answers).

- A batch of requests goes out concurrently (asyncio + httpx), at most `max_concurrency` in
  flight, within `requests_per_minute` / `tokens_per_minute` (aiolimiter's leaky buckets).
- A connection error, a timeout, 429 or 5xx is retried up to `max_retries` times with
  exponential backoff (0.5 s, 1 s, 2 s, ... at most 30 s, with jitter), or after the
  server's Retry-After when it sends one. Any other error status fails at once with the
  server's message.
- Every valid response is written to the cache as it arrives, keyed by the endpoint's model
  id, the request payload and `revision`; a later identical request reads it back and is
  charged the tokens and seconds recorded with it. So a run that failed midway, run again,
  sends only what is missing.
- The API key is read from the environment variable named by `api_key_env` when a request
  is sent; it goes into the Authorization header and nowhere else (not the cache key, the
  cache files, the config, logs or errors).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from tqdm.auto import tqdm

from harness.errors import ConfigError, UserError
from harness.run_files import atomic_write_text

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would drown the run's log

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
BACKOFF_S, BACKOFF_MAX_S = 0.5, 30.0
CACHE_FORMAT = 1  # bump when what a cached response holds changes


class ServedError(UserError):
    """The endpoint could not be reached, kept failing, or answered something unusable."""


@dataclass
class ServedMeter:
    """What an endpoint's requests cost so far (the runner takes differences around a phase)."""
    requests_sent: int = 0  # went out over the network (each retry counts once more)
    requests_cached: int = 0  # answered from the response cache
    retries: int = 0
    input_tokens: int = 0  # server-reported (usage), cached responses included
    output_tokens: int = 0
    cached_input_tokens: int = 0  # input tokens the server says it served from its prompt cache
    cached_seconds: float = 0.0  # request seconds recorded with the cached responses

    def copy(self) -> ServedMeter:
        return ServedMeter(**vars(self))

    def minus(self, before: ServedMeter) -> dict[str, float]:
        return {k: v - getattr(before, k) for k, v in vars(self).items()}


@dataclass(frozen=True)
class Response:
    body: dict[str, Any]
    seconds: float  # the request's latency when it was made (also for a cached response)
    cached: bool


@dataclass
class EndpointSettings:
    base_url: str
    name: str  # the server's model id
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_concurrency: int = 8
    max_retries: int = 4
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    revision: str = ""  # part of the cache key: change it when the model behind `name` changes
    extra_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_url = str(self.base_url).rstrip("/")
        if self.base_url in ("", "???") or str(self.name) == "???":
            raise ConfigError("model.base_url and model.name must be set: the endpoint (e.g. "
                              "http://127.0.0.1:8000/v1) and the model id it serves "
                              "(served.base_url / served.name with experiment=served_vs_tuned)")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"model.base_url must start with http:// or https://, got "
                              f"'{self.base_url}' (e.g. http://127.0.0.1:8000/v1)")
        if not str(self.name or "").strip():
            raise ConfigError("model.name: give the served model's id (what GET "
                              f"{self.base_url}/models lists)")
        if self.max_concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ConfigError("model.max_concurrency must be >= 1, model.max_retries >= 0 and "
                              "model.timeout_s > 0")
        for k in ("requests_per_minute", "tokens_per_minute"):
            v = getattr(self, k)
            if v is not None and float(v) <= 0:
                raise ConfigError(f"model.{k} must be > 0 or null, got {v}")


def estimate_tokens(payload: Mapping[str, Any]) -> int:
    """A request's tokens before it is sent, for tokens_per_minute: ~4 characters a token
    for the prompt, plus the most it may generate."""
    text = payload.get("prompt") or json.dumps(payload.get("messages") or "")
    return len(str(text)) // 4 + int(payload.get("max_tokens") or 0)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's Retry-After (seconds or an HTTP date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        if when is None:
            return None
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class Endpoint:
    """One OpenAI-compatible endpoint and its response cache (`cache_dir`; None: no cache)."""

    def __init__(self, settings: EndpointSettings, cache_dir: Path | None = None) -> None:
        self.settings = settings
        self.cache_dir = cache_dir
        self.meter = ServedMeter()
        self.reached = False  # GET /models answered (checked before the first request sent)
        self._rpm = (AsyncLimiter(float(settings.requests_per_minute), 60)
                     if settings.requests_per_minute else None)
        self._tpm = (AsyncLimiter(float(settings.tokens_per_minute), 60)
                     if settings.tokens_per_minute else None)

    # ---- the cache -----------------------------------------------------------------------
    def cache_key(self, path: str, payload: Mapping[str, Any]) -> str:
        head = {"format": CACHE_FORMAT, "model": self.settings.name,
                "revision": self.settings.revision, "path": path, "payload": payload}
        return hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()[:32]

    def _cache_file(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def _read_cached(self, key: str) -> Response | None:
        file = self._cache_file(key)
        if file is None or not file.is_file():
            return None
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            return Response(data["body"], float(data["seconds"]), True)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring unreadable cached response %s (%s); asking again", file, e)
            return None

    def _write_cached(self, key: str, path: str, payload: Mapping[str, Any],
                      body: Mapping[str, Any], seconds: float) -> None:
        file = self._cache_file(key)
        if file is not None:
            atomic_write_text(file, json.dumps({
                "model": self.settings.name, "revision": self.settings.revision, "path": path,
                "payload": payload, "body": body, "seconds": seconds,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}))

    # ---- HTTP ----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.settings.extra_headers}
        env = self.settings.api_key_env
        key = os.environ.get(env) if env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def check_reachable(self) -> list[str]:
        """GET /models once: a one-line error naming the URL when nothing answers there; the
        model ids the server lists (empty when it does not list them)."""
        url = f"{self.settings.base_url}/models"
        try:
            r = httpx.get(url, headers=self._headers(), timeout=min(self.settings.timeout_s, 10))
        except httpx.HTTPError as e:
            raise ServedError(f"cannot reach the served model at {self.settings.base_url} "
                              f"({type(e).__name__}: {e}); is the server running? "
                              "(model.base_url)") from None
        if r.status_code in (401, 403):
            env = self.settings.api_key_env
            raise ServedError(f"{url} refused the request ({r.status_code}): check the API key "
                              f"in ${env}" if env else f"{url} refused the request "
                              f"({r.status_code}): set model.api_key_env")
        self.reached = True
        if r.status_code != 200:
            return []  # some APIs do not list models: the first request will tell
        try:
            ids = [str(m.get("id")) for m in r.json().get("data") or []]
        except (ValueError, AttributeError):
            return []
        if ids and self.settings.name not in ids:
            raise ServedError(f"{self.settings.base_url} does not serve a model named "
                              f"'{self.settings.name}'; it serves: {', '.join(ids)} (model.name)")
        return ids

    def post_many(self, path: str, payloads: Sequence[Mapping[str, Any]], *,
                  check: Callable[[Mapping[str, Any]], str | None],
                  describe: Callable[[int], str], progress: bool = False,
                  desc: str = "requests") -> list[Response]:
        """POST every payload to `path` (cached ones are read back instead), concurrently;
        results in the payloads' order. `check(body)` says what is wrong with a response
        body, if anything (it is then neither cached nor returned: an error names the
        request through `describe(i)`)."""
        keys = [self.cache_key(path, p) for p in payloads]
        results: list[Response | None] = [self._read_cached(k) for k in keys]
        for r in results:
            if r is not None:
                self._charge(r.body, cached=True, seconds=r.seconds)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            if not self.reached:
                self.check_reachable()
            fresh = asyncio.run(self._send_all(path, [payloads[i] for i in missing],
                                               [keys[i] for i in missing], check,
                                               [describe(i) for i in missing], progress, desc))
            for i, r in zip(missing, fresh):
                results[i] = r
        return results  # type: ignore[return-value]

    def _charge(self, body: Mapping[str, Any], *, cached: bool, seconds: float) -> None:
        usage = body.get("usage") or {}
        m = self.meter
        m.input_tokens += int(usage.get("prompt_tokens") or 0)
        m.output_tokens += int(usage.get("completion_tokens") or 0)
        m.cached_input_tokens += int((usage.get("prompt_tokens_details") or {})
                                     .get("cached_tokens") or 0)
        if cached:
            m.requests_cached += 1
            m.cached_seconds += seconds

    async def _send_all(self, path: str, payloads: Sequence[Mapping[str, Any]],
                        keys: Sequence[str], check: Callable[[Mapping[str, Any]], str | None],
                        names: Sequence[str], progress: bool, desc: str) -> list[Response]:
        s = self.settings
        gate = asyncio.Semaphore(s.max_concurrency)
        stop = asyncio.Event()  # set by the first request that fails for good: the rest stay unsent
        limits = httpx.Limits(max_connections=s.max_concurrency,
                              max_keepalive_connections=s.max_concurrency)
        bar = tqdm(total=len(payloads), desc=desc, disable=not progress, leave=False)
        async with httpx.AsyncClient(base_url=s.base_url, timeout=s.timeout_s, limits=limits,
                                     headers=self._headers()) as client:
            async def one(i: int) -> Response | BaseException | None:
                async with gate:
                    if stop.is_set():
                        return None
                    try:
                        r = await self._send(client, path, payloads[i], keys[i], check, names[i])
                    except BaseException as e:  # noqa: BLE001 - re-raised below, after the rest
                        stop.set()
                        return e
                    bar.update(1)
                    return r

            out = await asyncio.gather(*(one(i) for i in range(len(payloads))))
        bar.close()
        errors = [r for r in out if isinstance(r, BaseException)]
        if errors:
            got = sum(isinstance(r, Response) for r in out)
            err = errors[0]
            if isinstance(err, ServedError):
                raise ServedError(f"{err} ({got} of {len(payloads)} responses of this batch were "
                                  "received and cached; running again sends only the rest)") from None
            raise err
        return out  # type: ignore[return-value]

    async def _send(self, client: httpx.AsyncClient, path: str, payload: Mapping[str, Any],
                    key: str, check: Callable[[Mapping[str, Any]], str | None],
                    name: str) -> Response:
        s = self.settings
        if self._rpm is not None:
            await self._rpm.acquire()
        if self._tpm is not None:
            await self._tpm.acquire(min(estimate_tokens(payload), float(s.tokens_per_minute)))
        url = f"{s.base_url}{path}"
        for attempt in range(s.max_retries + 1):
            wait, why = None, ""
            t0 = time.perf_counter()
            self.meter.requests_sent += 1
            try:
                r = await client.post(path, json=payload)
            except httpx.HTTPError as e:  # connection refused or reset, timeout
                why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                seconds = time.perf_counter() - t0
                if r.status_code == 200:
                    body = _json(r)
                    problem = check(body) if body is not None else "the body is not JSON"
                    if problem:
                        raise ServedError(f"{name} to {url}: {problem}")
                    self._write_cached(key, path, payload, body, seconds)
                    self._charge(body, cached=False, seconds=seconds)
                    return Response(body, seconds, False)
                message = _error_message(r)
                if r.status_code not in RETRY_STATUS:
                    raise ServedError(f"{name} to {url} failed with HTTP {r.status_code}: {message}")
                why, wait = f"HTTP {r.status_code}: {message}", retry_after_s(r.headers)
            if attempt == s.max_retries:
                raise ServedError(f"{name} to {url} failed after {s.max_retries} retries: {why}")
            self.meter.retries += 1
            if wait is None:
                wait = min(BACKOFF_MAX_S, BACKOFF_S * 2 ** attempt) * (0.5 + random.random())
            log.info("retrying %s in %.1f s (%s)", name, wait, why)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")


def _json(r: httpx.Response) -> dict[str, Any] | None:
    try:
        body = r.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error_message(r: httpx.Response) -> str:
    """The server's own words for an error response (OpenAI's {"error": {"message": ...}})."""
    body = _json(r)
    if body is not None:
        err = body.get("error", body.get("detail", body))
        if isinstance(err, dict):
            err = err.get("message") or json.dumps(err)[:300]
        return str(err)[:300]
    return (r.text or r.reason_phrase or "").strip()[:300]
