"""The model wrapper every strategy shares: prompt rendering, batched greedy generation,
and batched log-likelihood scoring of answer choices with a shared context.

Batch in, list out. Items are sorted by length inside each call so batches hold
similar lengths (less padding); results come back in the caller's order.

Prediction cache: with `LM.cache` set (the runner sets it unless prediction_cache=false),
a call's results are stored under a hash of the model's identity, the method, every
input and setting; an identical later call (a re-run of a sweep into a new directory)
reads them back, with the seconds measured when they were computed. `CACHE_METER` sums
what such hits saved, so the runner can charge a run the original predict time.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from harness.cache import cached_dir
from harness.models import load_model
from harness.work import METER, Shape, Work, add

CACHE_FORMAT = 3  # bump when what a call returns, or how it is computed, changes


@dataclass
class CacheMeter:
    hits: int = 0
    misses: int = 0
    saved_s: float = 0.0  # seconds the hits took when computed, minus reading them now


CACHE_METER = CacheMeter()

Message = Mapping[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # this item's share of its batch's wall time
    batch_seconds: float  # wall time of the batch the item was in
    batch_work: Work = dataclasses.field(default_factory=dict)  # what that batch computed


@dataclass(frozen=True)
class ChoiceScores:
    logprobs: tuple[float, ...]  # sum of log p(choice tokens | context), one per choice
    choice_tokens: tuple[int, ...]
    context_tokens: int
    seconds: float
    batch_seconds: float
    batch_work: Work = dataclasses.field(default_factory=dict)


def weights_fingerprint(model: PreTrainedModel) -> str:
    """Identifies base weights cheaply: the config plus a sample of the embedding matrix.
    (Tuned copies get an identity of their own: LoRA leaves the embeddings as they are.)"""
    h = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    emb = model.get_input_embeddings().weight.detach().flatten()[:65536].float().cpu().numpy()
    h.update(emb.tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class TextNLL:
    nll: float  # summed negative log-likelihood of the text's tokens (each after the first)
    tokens: int  # tokens scored


class LM:
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str,
                 use_chat_template: bool | None = None, share_context: bool = True,
                 identity: str | None = None, cache: Path | None = None) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name
        # What the prediction cache keys this model by: name + weights (+ tuned artifact).
        self.identity = identity or f"{name}|{self.fingerprint}"
        self.cache = cache  # prediction cache directory; None: off
        # Share each context's KV cache across its choices; off for models that rewrite
        # their input (prompt tuning prepends learned tokens), which are scored whole.
        self.share_context = share_context
        self.device = next(model.parameters()).device
        has_template = getattr(tokenizer, "chat_template", None) is not None
        self.chat = has_template if use_chat_template is None else use_chat_template
        self.stop_ids = self._stop_token_ids()
        # a half-precision model's float32 weights, loaded on demand (get_lm sets it)
        self.load_float32: Callable[[], PreTrainedModel] | None = None

    @functools.cached_property
    def shape(self) -> Shape:
        """What the FLOP counts of harness.work need from the model."""
        return Shape.of(self.model)

    @functools.cached_property
    def fingerprint(self) -> str:
        """The weights fingerprint, computed once (artifact keys and caches use it)."""
        return weights_fingerprint(self.model)

    # ---- prompts -------------------------------------------------------------------------
    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees; generation continues right after it."""
        if self.chat:
            return self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        text = ""
        for m in messages:
            if m["role"] == "system":
                text += m["content"] + "\n\n"
            elif m["role"] == "user":
                text += m["content"] + "\nAnswer:"
            else:
                text += " " + m["content"] + "\n\n"
        return text

    def encode(self, text: str) -> list[int]:
        # A chat template writes its own special tokens; plain prompts get the tokenizer's.
        return self.tokenizer(text, add_special_tokens=not self.chat).input_ids

    def encode_continuation(self, text: str) -> list[int]:
        # After a chat template the answer starts a fresh line; plain prompts end in "Answer:".
        return self.tokenizer(text if self.chat else " " + text, add_special_tokens=False).input_ids

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _stop_token_ids(self) -> list[int]:
        """End of turn / end of text, and every token that contains a newline."""
        ids = {self.tokenizer.eos_token_id}
        for tok in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"):
            tid = self.tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        for tok, tid in self.tokenizer.get_vocab().items():
            if "\n" in self.tokenizer.convert_tokens_to_string([tok]):
                ids.add(tid)
        return sorted(i for i in ids if i is not None)

    # ---- batching ------------------------------------------------------------------------
    def _left_pad(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, width - len(s):] = torch.tensor(s)
                mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    @staticmethod
    def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # longest first: OOM early
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    # ---- prediction cache ----------------------------------------------------------------
    def _cached(self, kind: str, inputs: dict[str, Any], cls: type,
                compute: Callable[[], list]) -> list:
        if self.cache is None:
            return compute()
        head = {"format": CACHE_FORMAT, "kind": kind, "lm": self.identity, "chat": self.chat,
                "share_context": self.share_context, "stop": self.stop_ids,
                "device": self.device.type, "dtype": str(self.model.dtype), **inputs}
        key = hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()[:24]
        fresh: dict[str, list] = {}

        def build(tmp: Path) -> None:
            t0 = time.perf_counter()
            with METER.scope() as work:
                fresh["r"] = compute()
            (tmp / "results.json").write_text(json.dumps({
                "seconds": time.perf_counter() - t0, "work": work,
                "results": [dataclasses.asdict(r) for r in fresh["r"]]}), encoding="utf-8")

        t0 = time.perf_counter()
        entry = cached_dir(self.cache / f"{kind}-{key}", build, what="prediction cache entry")
        if "r" in fresh:
            CACHE_METER.misses += 1
            return fresh["r"]
        data = json.loads((entry / "results.json").read_text(encoding="utf-8"))
        results = [cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in r.items()})
                   for r in data["results"]]
        CACHE_METER.hits += 1
        CACHE_METER.saved_s += float(data["seconds"]) - (time.perf_counter() - t0)
        METER.add(data["work"])  # the work these results took when they were computed
        return results

    # ---- generation ----------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int = 16, batch_size: int = 8,
                 progress: bool = False) -> list[Generation]:
        return self._cached(
            "generate", {"prompts": list(prompts), "max_new_tokens": max_new_tokens,
                         "batch_size": batch_size}, Generation,
            lambda: self._generate(prompts, max_new_tokens=max_new_tokens,
                                   batch_size=batch_size, progress=progress))

    @torch.inference_mode()
    def _generate(self, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int,
                  progress: bool) -> list[Generation]:
        encoded = [self.encode(p) for p in prompts]
        results: list[Generation | None] = [None] * len(prompts)
        batches = self._batches([len(e) for e in encoded], batch_size)
        for batch in tqdm(batches, desc="generate", disable=not progress, leave=False):
            ids, mask = self._left_pad([encoded[i] for i in batch])
            t0 = time.perf_counter()
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                do_sample=False, num_beams=1, eos_token_id=self.stop_ids,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            wall = time.perf_counter() - t0
            new = out[:, ids.shape[1]:]
            # the prompt's prefill gives the first token's logits; each later token a step
            work = add(self.shape.forward(len(batch), ids.shape[1], 1),
                       self.shape.decode(len(batch), new.shape[1] - 1, ids.shape[1]))
            METER.add(work)
            for row, i in enumerate(batch):
                toks = new[row].tolist()
                n = next((k + 1 for k, t in enumerate(toks) if t in self.stop_ids), len(toks))
                text = self.tokenizer.decode(toks[:n], skip_special_tokens=True)
                results[i] = Generation(
                    text=text.split("\n")[0].strip(), prompt_tokens=len(encoded[i]),
                    completion_tokens=n, seconds=wall / len(batch), batch_seconds=wall,
                    batch_work=work,
                )
        return results  # type: ignore[return-value]

    # ---- log-likelihood of a text --------------------------------------------------------
    def text_nll(self, text: str, window: int = 512) -> TextNLL:
        """Summed token NLL of `text` over non-overlapping windows of `window` tokens."""
        return self._cached("nll", {"text": text, "window": window}, TextNLL,
                            lambda: [self._text_nll(text, window)])[0]

    @torch.inference_mode()
    def _text_nll(self, text: str, window: int) -> TextNLL:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        nll, count = 0.0, 0
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start:start + window + 1]], device=self.device)
            if chunk.shape[1] < 2:
                break
            logits = self.model(input_ids=chunk[:, :-1]).logits.float()
            METER.add(self.shape.forward(1, chunk.shape[1] - 1, chunk.shape[1] - 1))
            nll += torch.nn.functional.cross_entropy(logits[0], chunk[0, 1:],
                                                     reduction="sum").item()
            count += chunk.shape[1] - 1
        return TextNLL(nll, count)

    # ---- log-likelihood of choices -------------------------------------------------------
    def score_choices(self, contexts: Sequence[str], choices: Sequence[Sequence[str]], *,
                      batch_size: int = 8, progress: bool = False) -> list[ChoiceScores]:
        """log p(choice | context) for every choice; each context is run once and its KV
        cache is shared by all of that question's choices."""
        return self._cached(
            "score", {"contexts": list(contexts), "choices": [list(c) for c in choices],
                      "batch_size": batch_size}, ChoiceScores,
            lambda: self._score_choices(contexts, choices, batch_size=batch_size,
                                        progress=progress))

    @torch.inference_mode()
    def _score_choices(self, contexts: Sequence[str], choices: Sequence[Sequence[str]], *,
                       batch_size: int, progress: bool) -> list[ChoiceScores]:
        ctx = [self.encode(c) for c in contexts]
        conts = [[self.encode_continuation(ch) for ch in chs] for chs in choices]
        results: list[ChoiceScores | None] = [None] * len(contexts)
        batches = self._batches([len(c) for c in ctx], batch_size)
        for batch in tqdm(batches, desc="score choices", disable=not progress, leave=False):
            t0 = time.perf_counter()
            score = self._score_batch if self.share_context else self._score_batch_whole
            with METER.scope() as work:
                sums = score([ctx[i] for i in batch], [conts[i] for i in batch])
            wall = time.perf_counter() - t0
            for row, i in enumerate(batch):
                results[i] = ChoiceScores(
                    logprobs=tuple(sums[row]), choice_tokens=tuple(len(c) for c in conts[i]),
                    context_tokens=len(ctx[i]), seconds=wall / len(batch), batch_seconds=wall,
                    batch_work=work,
                )
        return results  # type: ignore[return-value]

    def _score_batch(self, ctx: list[list[int]], conts: list[list[list[int]]]) -> list[list[float]]:
        # Contexts right-padded and run without an attention mask: causal attention keeps
        # every real token away from the trailing pads, and an unmasked batch lets SDPA use
        # its fused causal kernel (a padding mask forces the slower explicit-mask path).
        lens = torch.tensor([len(c) for c in ctx], device=self.device)
        width = int(lens.max())
        ids = torch.full((len(ctx), width), self.tokenizer.pad_token_id, dtype=torch.long)
        for i, c in enumerate(ctx):
            ids[i, : len(c)] = torch.tensor(c)
        # Logits only where a context ends (what predicts each choice's first token).
        ends = sorted({len(c) - 1 for c in ctx})
        out = self.model(input_ids=ids.to(self.device), use_cache=True,
                         logits_to_keep=torch.tensor(ends, device=self.device))
        METER.add(self.shape.forward(len(ctx), width, len(ends)))
        at_end = torch.tensor([ends.index(len(c) - 1) for c in ctx], device=self.device)
        last = out.logits[torch.arange(len(ctx), device=self.device), at_end]  # batch x vocab
        # Row r of the continuation batch belongs to question owner[r].
        owner = [q for q, cs in enumerate(conts) for _ in cs]
        flat = [c for cs in conts for c in cs]
        rep = torch.tensor(owner, device=self.device)
        cache = out.past_key_values
        cache.batch_select_indices(rep)
        cwidth = max(len(c) for c in flat)
        cont_ids = torch.full((len(flat), cwidth), self.tokenizer.pad_token_id, dtype=torch.long)
        cont_mask = torch.zeros((len(flat), cwidth), dtype=torch.long)
        for r, c in enumerate(flat):
            cont_ids[r, : len(c)] = torch.tensor(c)
            cont_mask[r, : len(c)] = 1
        cont_ids, cont_mask = cont_ids.to(self.device), cont_mask.to(self.device)
        # The cache holds each context's pads after its real tokens: mask them out.
        ctx_mask = (torch.arange(width, device=self.device) < lens[:, None]).long()
        cont_pos = lens[rep, None] + torch.arange(cwidth, device=self.device)
        out2 = self.model(input_ids=cont_ids, attention_mask=torch.cat([ctx_mask[rep], cont_mask], 1),
                          position_ids=cont_pos, past_key_values=cache, use_cache=False)
        METER.add(self.shape.forward(len(flat), cwidth, cwidth, past=width))
        # Token t of a choice is predicted by the context's last position (t=0) or by
        # continuation position t-1.
        logits = torch.cat([last[rep, None, :], out2.logits[:, :-1, :]], dim=1)
        logp = torch.log_softmax(logits.float(), dim=-1)
        tok_lp = logp.gather(-1, cont_ids.unsqueeze(-1)).squeeze(-1) * cont_mask
        return _by_question(owner, tok_lp.sum(-1).tolist(), len(conts))

    def _score_batch_whole(self, ctx: list[list[int]],
                           conts: list[list[list[int]]]) -> list[list[float]]:
        """Each (context + choice) as its own sequence: slower, works with any model."""
        rows = [(q, c) for q, cs in enumerate(conts) for c in cs]
        ids, mask = self._left_pad([ctx[q] + c for q, c in rows])
        width = ids.shape[1]
        logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -width:, :]
        METER.add(self.shape.forward(len(rows), width, width))
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        tok_lp = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        sums = [tok_lp[r, width - 1 - len(c):].sum().item() for r, (_, c) in enumerate(rows)]
        return _by_question([q for q, _ in rows], sums, len(conts))


def _by_question(owner: Sequence[int], sums: Sequence[float], n: int) -> list[list[float]]:
    """Per-row sums (row r belongs to question owner[r]) regrouped per question, in order."""
    per_q: list[list[float]] = [[] for _ in range(n)]
    for q, value in zip(owner, sums):
        per_q[q].append(value)
    return per_q


_LOADED: dict[str, LM] = {}


def get_lm(cfg: Mapping[str, Any]) -> LM:
    """Load the model once per process and config; later calls reuse it."""
    key = repr(sorted((k, str(v)) for k, v in cfg.items()))
    if key not in _LOADED:
        model, tokenizer = load_model(cfg)
        chat = cfg.get("use_chat_template")
        lm = LM(model, tokenizer, str(cfg["name_or_path"]),
                use_chat_template=None if chat in (None, "auto") else bool(chat))
        if model.dtype in (torch.bfloat16, torch.float16):
            # mixed-precision training starts from the source's float32 weights, not from
            # the half-precision copy (rounding them loses what small updates need)
            lm.load_float32 = functools.partial(_float32_weights, dict(cfg))
        _LOADED[key] = lm
    return _LOADED[key]


def _float32_weights(cfg: Mapping[str, Any]) -> PreTrainedModel:
    return load_model({**cfg, "dtype": "float32"})[0]
