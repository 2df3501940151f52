"""The served implementation of the LM contract: a model behind an OpenAI-compatible
endpoint (vLLM's `vllm serve`, llama.cpp's server, a hosted API), conf/model/openai.yaml.

    generate        POST /completions (or /chat/completions) with temperature 0, stopping at
                    a newline; the first line is the answer, as in process
    score_choices   loglik: one /completions request per choice with `echo` and `logprobs`,
                    summing the echoed log-probs of the choice's tokens (found by their text
                    offsets); needs a completions endpoint whose echoed log-probs are right
    score_letters   letter: one request per question for one token with its top log-probs
                    (`logprobs: top_k` on completions, `top_logprobs` on chat)
    loglik_check    auto: asks the server for the next token after a probe text, then echoes
                    the text with that token appended, and compares the two log-probs of
                    the same token; they must agree for loglik to be trusted

Token counts come from each response's `usage`; prompt text is counted for the context
budget with `model.tokenizer` (a Hugging Face id or path of the served model's tokenizer)
or, when that is null, with the bundled SmolLM2 tokenizer as a stated proxy. Requests,
retries, rate limits and the response cache are harness.models.endpoint's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.cost.prices import Price
from harness.errors import ConfigError
from harness.models.contract import (
    ChoiceScores,
    Generation,
    LoglikCheck,
    Message,
    Prompt,
    letter_logprobs,
    plain_prompt,
)
from harness.models.endpoint import Endpoint, EndpointSettings, ServedError, ServedMeter
from harness.system import cache_root

log = logging.getLogger(__name__)

ENDPOINTS = ("completions", "chat")
# Texts whose next token the loglik check asks for (answer.choice_scoring=auto).
PROBES = ("The capital of France is", "Water boils at a temperature of 100 degrees")
ECHO_TOLERANCE = 0.1  # nats: a generated token's log-prob and its echoed one must agree this well


class ServedLM:
    """A model behind an OpenAI-compatible endpoint (LanguageModel, where = "served")."""

    where = "served"

    def __init__(self, endpoint: Endpoint, *, kind: str = "completions", tokenizer: Any = None,
                 use_chat_template: bool | None = None, price: Price | None = None,
                 budget_tokenizer: str = "") -> None:
        if kind not in ENDPOINTS:
            raise ConfigError(f"unknown model.endpoint '{kind}'; choose one of: {', '.join(ENDPOINTS)}")
        self.endpoint, self.kind = endpoint, kind
        self.name = endpoint.settings.name
        self.base_url = endpoint.settings.base_url
        self.identity = f"served:{self.name}|{endpoint.settings.revision}"
        self.tokenizer = tokenizer  # counts the context budget; renders completions prompts
        has_template = getattr(tokenizer, "chat_template", None) is not None
        self.chat = kind == "completions" and (has_template if use_chat_template is None
                                              else bool(use_chat_template) and has_template)
        self.price = price or Price()
        self.budget_tokenizer = budget_tokenizer
        self._check: LoglikCheck | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ServedLM:
        known = set(EndpointSettings.__dataclass_fields__) - {"extra_headers"}
        settings = EndpointSettings(**{k: cfg[k] for k in known if cfg.get(k) is not None})
        cache = cache_root(cfg.get("cache_dir")) / "predictions" / "served"
        spec = cfg.get("tokenizer")
        tokenizer, label = _tokenizer(spec, cfg.get("cache_dir"))
        chat = cfg.get("use_chat_template", "auto")
        return cls(Endpoint(settings, cache), kind=str(cfg.get("endpoint") or "completions"),
                   tokenizer=tokenizer,
                   use_chat_template=None if chat in (None, "auto") else bool(chat),
                   price=Price.from_config(cfg.get("price")), budget_tokenizer=label)

    # ---- the contract --------------------------------------------------------------------
    @property
    def cache(self) -> Path | None:
        """The response cache (under the run's prediction cache; None: off)."""
        return self.endpoint.cache_dir

    @cache.setter
    def cache(self, predictions_dir: Path | None) -> None:
        self.endpoint.cache_dir = None if predictions_dir is None else Path(predictions_dir) / "served"

    @property
    def meter(self) -> ServedMeter:
        return self.endpoint.meter

    def render(self, messages: Sequence[Message]) -> Prompt:
        if self.kind == "chat":
            return [dict(m) for m in messages]
        if self.chat:
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                      add_generation_prompt=True)
        return plain_prompt(messages)

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return max(1, len(text) // 4)
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def describe(self) -> dict[str, Any]:
        """What a run records under metrics.json -> served (never the key's value)."""
        s = self.endpoint.settings
        return {"base_url": s.base_url, "name": s.name, "endpoint": self.kind,
                "revision": s.revision, "max_concurrency": s.max_concurrency,
                "max_retries": s.max_retries, "timeout_s": s.timeout_s,
                "requests_per_minute": s.requests_per_minute,
                "tokens_per_minute": s.tokens_per_minute, "api_key_env": s.api_key_env,
                "budget_tokenizer": self.budget_tokenizer,
                "price": {k: v for k, v in vars(self.price).items()}}

    def _path(self) -> str:
        return "/chat/completions" if self.kind == "chat" else "/completions"

    def _body(self, prompt: Prompt, **knobs: Any) -> dict[str, Any]:
        key = "messages" if self.kind == "chat" else "prompt"
        return {"model": self.name, key: prompt, "temperature": 0, **knobs}

    def _post(self, path: str, payloads: list[dict[str, Any]], check, what: str,
              progress: bool) -> list:
        def describe(i: int) -> str:
            p = payloads[i].get("prompt", payloads[i].get("messages"))
            text = p if isinstance(p, str) else (p[-1].get("content", "") if p else "")
            return f"{what} request {i + 1} of {len(payloads)} ('{_snippet(text)}')"

        return self.endpoint.post_many(path, payloads, check=check, describe=describe,
                                       progress=progress, desc=what)

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int = 16, batch_size: int = 8,
                 progress: bool = False) -> list[Generation]:
        payloads = [self._body(p, max_tokens=max_new_tokens, stop=["\n"]) for p in prompts]
        t0 = time.perf_counter()
        responses = self._post(self._path(), payloads, _check_choices, "generate", progress)
        share = (time.perf_counter() - t0) / max(len(prompts), 1)
        out = []
        for r in responses:
            choice = r.body["choices"][0]
            text = (choice.get("message") or {}).get("content") if self.kind == "chat" \
                else choice.get("text")
            usage = r.body.get("usage") or {}
            out.append(Generation(
                text=(text or "").strip().split("\n")[0].strip(),
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                seconds=share, batch_seconds=r.seconds))
        return out

    def score_choices(self, contexts: Sequence[Prompt], choices: Sequence[Sequence[str]], *,
                      batch_size: int = 8, progress: bool = False) -> list[ChoiceScores]:
        if self.kind == "chat":
            raise ConfigError(f"model {self.name}: a chat endpoint cannot echo prompt log-probs, "
                              "so choices cannot be scored by log-likelihood; use "
                              "answer.choice_scoring=letter (or auto), or model.endpoint=completions")
        cont = [[c if self.chat else " " + c for c in chs] for chs in choices]
        payloads, owner = [], []
        for q, (ctx, chs) in enumerate(zip(contexts, cont)):
            for c in chs:
                payloads.append(self._body(ctx + c, max_tokens=1, echo=True, logprobs=1))
                owner.append(q)
        t0 = time.perf_counter()
        responses = self._post("/completions", payloads, _check_echo, "score choices", progress)
        share = (time.perf_counter() - t0) / max(len(contexts), 1)
        per_q: list[list[tuple[float, int, int, float]]] = [[] for _ in contexts]
        for q, p, r in zip(owner, payloads, responses):
            per_q[q].append((*_continuation_logprob(r.body, len(contexts[q]), len(p["prompt"])),
                             r.seconds))
        return [ChoiceScores(logprobs=tuple(lp for lp, _, _, _ in rows),
                             choice_tokens=tuple(n for _, n, _, _ in rows),
                             context_tokens=rows[0][2] if rows else 0, seconds=share,
                             batch_seconds=max((s for _, _, _, s in rows), default=0.0))
                for rows in per_q]

    def score_letters(self, prompts: Sequence[Prompt], n_choices: Sequence[int], *, top_k: int = 20,
                      batch_size: int = 8, progress: bool = False) -> list[ChoiceScores]:
        knobs = ({"logprobs": True, "top_logprobs": top_k} if self.kind == "chat"
                 else {"logprobs": top_k})
        payloads = [self._body(p, max_tokens=1, **knobs) for p in prompts]
        t0 = time.perf_counter()
        responses = self._post(self._path(), payloads, self._check_top, "score letters", progress)
        share = (time.perf_counter() - t0) / max(len(prompts), 1)
        out = []
        for r, n in zip(responses, n_choices):
            usage = r.body.get("usage") or {}
            out.append(ChoiceScores(logprobs=letter_logprobs(self._top(r.body), n),
                                    choice_tokens=(1,) * n,
                                    context_tokens=int(usage.get("prompt_tokens") or 0),
                                    seconds=share, batch_seconds=r.seconds))
        return out

    def loglik_check(self) -> LoglikCheck:
        """Do the server's echoed prompt log-probs match the log-probs it gives the same
        tokens when it generates them? (Once per model and process.)"""
        if self._check is None:
            self._check = self._loglik_check()
            log.info("%s: loglik %s (%s)", self.name, "trusted" if self._check.exact else
                     "not trusted", self._check.reason)
        return self._check

    def _loglik_check(self) -> LoglikCheck:
        if self.kind == "chat":
            return LoglikCheck(False, "a chat endpoint cannot echo prompt log-probs")
        gen = self._post("/completions", [self._body(p, max_tokens=1, logprobs=1) for p in PROBES],
                         self._check_top, "loglik check", False)
        tokens = [(r.body["choices"][0].get("logprobs") or {}) for r in gen]
        firsts = [(lp.get("tokens") or [None])[0] for lp in tokens]
        gen_lp = [(lp.get("token_logprobs") or [None])[0] for lp in tokens]
        if any(t is None or v is None for t, v in zip(firsts, gen_lp)):
            return LoglikCheck(False, "the server gave no log-prob for a generated token")
        try:
            echo = self._post("/completions", [self._body(p + t, max_tokens=1, echo=True, logprobs=1)
                                               for p, t in zip(PROBES, firsts)],
                              _check_echo, "loglik check", False)
        except ServedError as e:
            return LoglikCheck(False, f"the server does not echo prompt log-probs ({e})")
        gaps = []
        for p, t, lp_gen, r in zip(PROBES, firsts, gen_lp, echo):
            lp_echo, n, _ = _continuation_logprob(r.body, len(p), len(p + t))
            if n != 1:
                return LoglikCheck(False, f"the echoed prompt split '{p}' + '{t}' into other "
                                          "tokens; the check could not compare them")
            gaps.append((t, lp_gen, lp_echo))
        worst = max(gaps, key=lambda g: abs(g[1] - g[2]))
        detail = (f"'{worst[0]}' after '{PROBES[gaps.index(worst)]}': generated "
                  f"{worst[1]:.3f}, echoed {worst[2]:.3f}")
        if abs(worst[1] - worst[2]) > ECHO_TOLERANCE:
            return LoglikCheck(False, f"the server's echoed prompt log-probs disagree with its "
                                      f"generated ones ({detail}; tolerance {ECHO_TOLERANCE})")
        return LoglikCheck(True, f"echoed and generated log-probs agree ({detail})")

    # ---- reading responses ---------------------------------------------------------------
    def _top(self, body: Mapping[str, Any]) -> dict[str, float]:
        """The first generated token's top log-probs: token text -> log-prob."""
        lp = body["choices"][0].get("logprobs") or {}
        if self.kind == "chat":
            first = (lp.get("content") or [{}])[0]
            return {str(t.get("token")): float(t.get("logprob"))
                    for t in first.get("top_logprobs") or [] if t.get("logprob") is not None}
        top = (lp.get("top_logprobs") or [None])[0] or {}
        return {str(k): float(v) for k, v in top.items() if v is not None}

    def _check_top(self, body: Mapping[str, Any]) -> str | None:
        problem = _check_choices(body)
        if problem:
            return problem
        lp = body["choices"][0].get("logprobs")
        if not lp:
            return ("the response has no logprobs (the server may not return them: "
                    "llama.cpp needs logits_all, vLLM --max-logprobs >= the top_k asked)")
        if self.kind == "chat":
            content = lp.get("content") or []
            if not content or content[0].get("top_logprobs") is None:
                return "the response's logprobs have no top_logprobs for the first token"
        elif not (lp.get("top_logprobs") or [None])[0] and not lp.get("token_logprobs"):
            return "the response's logprobs have no top_logprobs for the first token"
        return None


def _check_choices(body: Mapping[str, Any]) -> str | None:
    if body.get("error"):
        err = body["error"]
        return f"the server answered with an error: {err.get('message') if isinstance(err, dict) else err}"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "the response has no choices"
    return None


def _check_echo(body: Mapping[str, Any]) -> str | None:
    problem = _check_choices(body)
    if problem:
        return problem
    lp = body["choices"][0].get("logprobs") or {}
    if not lp.get("token_logprobs") or not lp.get("text_offset"):
        return ("the response has no echoed prompt logprobs (token_logprobs and text_offset); "
                "the server may not support echo: use answer.choice_scoring=letter or auto")
    return None


def _continuation_logprob(body: Mapping[str, Any], context_chars: int,
                          prompt_chars: int) -> tuple[float, int, int]:
    """From an echoed completion of a prompt = context + continuation: the summed log-prob of
    the continuation's tokens (those whose text starts at or after the context's end and
    before the prompt's: a generated token that follows is not counted, whether or not the
    server lists it), their number, and the context's tokens."""
    lp = body["choices"][0]["logprobs"]
    offsets, values = lp["text_offset"], lp["token_logprobs"]
    cont = [i for i, o in enumerate(offsets) if context_chars <= o < prompt_chars]
    context = sum(1 for o in offsets if o < context_chars)
    return sum(float(values[i]) for i in cont if values[i] is not None), len(cont), context


def _snippet(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else "..." + text[-n:]


def _tokenizer(spec: Any, cache_dir: Any) -> tuple[Any, str]:
    """The tokenizer named by model.tokenizer (a gguf-package spec, an HF id or path), or the
    bundled one as a proxy for counting when it is null; and what the run records."""
    from transformers import AutoTokenizer

    from harness.models.loading import BUNDLED_GGUF, GGUF_PREFIX, bundled_tokenizer_dir

    if spec:
        spec = str(spec)
        path = bundled_tokenizer_dir(spec, cache_root(cache_dir)) if spec.startswith(GGUF_PREFIX) \
            else spec
        return AutoTokenizer.from_pretrained(str(path)), spec
    try:
        path = bundled_tokenizer_dir(BUNDLED_GGUF, cache_root(cache_dir))
    except Exception as e:  # noqa: BLE001 - the package may not be installed
        log.warning("no model.tokenizer and no bundled tokenizer (%s): the context budget is "
                    "counted as 4 characters a token", e)
        return None, "4 characters a token (estimate)"
    tok = AutoTokenizer.from_pretrained(str(path))
    tok.chat_template = None  # a proxy for counting only: it must not render the served model's prompts
    return tok, f"{BUNDLED_GGUF} (a proxy: set model.tokenizer to the served model's)"
