"""The in-process implementation of the LM contract (harness.models.contract): a
transformers model and its tokenizer, with prompt rendering, batched greedy generation,
batched log-likelihood scoring of answer choices with a shared context, and letter scoring
from the next token's log-probs.

Batch in, list out. Items are sorted by length inside each call so batches hold
similar lengths (less padding); results come back in the caller's order.

Prediction cache: with `LM.cache` set (the runner sets it unless prediction_cache=false),
a call's results are stored and read back by harness.models.prediction_cache.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from harness.cost.work import METER, Shape, add
from harness.models.contract import (
    ChoiceScores,
    Generation,
    LoglikCheck,
    Message,
    letter_logprobs,
    plain_prompt,
)
from harness.models.loading import load_model
from harness.models.prediction_cache import cached_call


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
    per_token: tuple[float, ...] = ()  # each scored token's NLL, in order (for bootstraps)


class LM:
    """A model in this process (LanguageModel, where = "local")."""

    where = "local"

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
        """What the FLOP counts of harness.cost.work need from the model."""
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
        return plain_prompt(messages)

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
        head = {"kind": kind, "lm": self.identity, "chat": self.chat,
                "share_context": self.share_context, "stop": self.stop_ids,
                "device": self.device.type, "dtype": str(self.model.dtype), **inputs}
        return cached_call(self.cache, kind, head, cls, compute)

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
        return self._cached("nll-per-token", {"text": text, "window": window}, TextNLL,
                            lambda: [self._text_nll(text, window)])[0]

    @torch.inference_mode()
    def _text_nll(self, text: str, window: int) -> TextNLL:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        per_token: list[float] = []
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start:start + window + 1]], device=self.device)
            if chunk.shape[1] < 2:
                break
            logits = self.model(input_ids=chunk[:, :-1]).logits.float()
            METER.add(self.shape.forward(1, chunk.shape[1] - 1, chunk.shape[1] - 1))
            per_token += torch.nn.functional.cross_entropy(logits[0], chunk[0, 1:],
                                                           reduction="none").tolist()
        return TextNLL(float(sum(per_token)), len(per_token), tuple(per_token))

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


    # ---- letter scoring ------------------------------------------------------------------
    def score_letters(self, prompts: Sequence[str], n_choices: Sequence[int], *, top_k: int = 20,
                      batch_size: int = 8, progress: bool = False) -> list[ChoiceScores]:
        """Per prompt: the next token's log-probs of the letters A.. (n_choices of them),
        read from its top_k tokens as a served model's top_logprobs are
        (contract.letter_logprobs)."""
        return self._cached(
            "letters", {"prompts": list(prompts), "n": list(n_choices), "top_k": top_k,
                        "batch_size": batch_size}, ChoiceScores,
            lambda: self._score_letters(prompts, n_choices, top_k=top_k, batch_size=batch_size,
                                        progress=progress))

    @torch.inference_mode()
    def _score_letters(self, prompts: Sequence[str], n_choices: Sequence[int], *, top_k: int,
                       batch_size: int, progress: bool) -> list[ChoiceScores]:
        encoded = [self.encode(p) for p in prompts]
        results: list[ChoiceScores | None] = [None] * len(prompts)
        for batch in tqdm(self._batches([len(e) for e in encoded], batch_size),
                          desc="score letters", disable=not progress, leave=False):
            t0 = time.perf_counter()
            # right-padded and unmasked, read at each row's last real position (as _score_batch)
            seqs = [encoded[i] for i in batch]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
            for r, s in enumerate(seqs):
                ids[r, : len(s)] = torch.tensor(s)
            ends = sorted({len(s) - 1 for s in seqs})
            logits = self._last_logits(ids.to(self.device), ends)
            work = self.shape.forward(len(seqs), width, len(ends))
            METER.add(work)
            at = torch.tensor([ends.index(len(s) - 1) for s in seqs], device=self.device)
            logp = torch.log_softmax(logits[torch.arange(len(seqs)), at], dim=-1)
            top = torch.topk(logp, min(top_k, logp.shape[-1]), dim=-1)
            wall = time.perf_counter() - t0
            for r, i in enumerate(batch):
                tokens = {}
                for lp, tid in zip(top.values[r].tolist(), top.indices[r].tolist()):
                    text = self.tokenizer.decode([tid])
                    tokens[text] = max(lp, tokens.get(text, -math.inf))
                results[i] = ChoiceScores(
                    logprobs=letter_logprobs(tokens, n_choices[i]),
                    choice_tokens=(1,) * n_choices[i], context_tokens=len(encoded[i]),
                    seconds=wall / len(batch), batch_seconds=wall, batch_work=work)
        return results  # type: ignore[return-value]

    def _last_logits(self, ids: torch.Tensor, ends: list[int]) -> torch.Tensor:
        """float32 logits at the `ends` positions. A half-precision model's LM head is applied
        again in float32 to its input: bfloat16 logits keep 8 bits of mantissa, which ties
        letters whose log-probs differ by less than ~0.1 (a served float32 model separates
        them)."""
        head = self.model.get_output_embeddings()
        half = self.model.dtype in (torch.bfloat16, torch.float16)
        exact = half and isinstance(head, torch.nn.Linear) and not getattr(
            self.model.config, "final_logit_softcapping", None)  # softcapped heads: as they are
        seen: dict[str, torch.Tensor] = {}
        hook = head.register_forward_hook(lambda m, inp, out: seen.update(h=inp[0])) \
            if exact else None
        try:
            out = self.model(input_ids=ids, logits_to_keep=torch.tensor(ends, device=ids.device))
        finally:
            if hook is not None:
                hook.remove()
        if not exact:
            return out.logits.float()
        bias = head.bias.float() if head.bias is not None else None
        return torch.nn.functional.linear(seen["h"].float(), head.weight.float(), bias)

    def loglik_check(self) -> LoglikCheck:
        return LoglikCheck(True, "in-process model: exact log-likelihoods from its own forward pass")


def _by_question(owner: Sequence[int], sums: Sequence[float], n: int) -> list[list[float]]:
    """Per-row sums (row r belongs to question owner[r]) regrouped per question, in order."""
    per_q: list[list[float]] = [[] for _ in range(n)]
    for q, value in zip(owner, sums):
        per_q[q].append(value)
    return per_q


def load_local(cfg: Mapping[str, Any]) -> LM:
    """The in-process model of a model config (harness.models.get_lm caches it)."""
    model, tokenizer = load_model(cfg)
    chat = cfg.get("use_chat_template")
    lm = LM(model, tokenizer, str(cfg["name_or_path"]),
            use_chat_template=None if chat in (None, "auto") else bool(chat))
    if model.dtype in (torch.bfloat16, torch.float16):
        # mixed-precision training starts from the source's float32 weights, not from
        # the half-precision copy (rounding them loses what small updates need)
        lm.load_float32 = functools.partial(_float32_weights, dict(cfg))
    return lm


def _float32_weights(cfg: Mapping[str, Any]) -> PreTrainedModel:
    return load_model({**cfg, "dtype": "float32"})[0]
