"""`harness-export --check`: score what was exported on the run's own test items, link by link
(harness.export.parity), and say whether the export reproduces the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from harness.export.model import model_cfg
from harness.export.parity import (
    Parity,
    adapter_active,
    compare,
    rows,
    score,
    scoring_config,
)
from harness.export.source import Source
from harness.system import config_dir

SERVED_ALIAS = "adaptbench-export"


def check(src: Source, out: Path, written: dict[str, Path], *, items: int | None = None,
          letter_top_k: int | None = None) -> dict[str, Any]:
    work = out / ".parity"
    measured = rows(src.run.path / "predictions.jsonl")
    if items:
        measured = dict(list(measured.items())[:items])
    links: list[Parity] = []
    adapter = None
    if src.trains:
        folder = written.get("merged") or written.get("model") or written["adapter"]
        local = model_cfg(src, name_or_path=str(folder.resolve()),
                          dtype=src.metrics.get("dtype") or "float32")
        exported = score(scoring_config(src, local, items=items), work / "export")
        links.append(compare(measured, exported, f"the run -> {folder.name}/ in process",
                             retrieval=src.retrieves))
        base = score(scoring_config(src, model_cfg(src), items=items, cached=True), work / "base")
        adapter = adapter_active(measured, exported, base)
        if "gguf" in written:
            links.append(_gguf_link(src, written["gguf"], folder, local, work, items, letter_top_k))
        if "gguf_adapter" in written:
            links.append(_gguf_link(src, written["gguf_base"], folder, local, work, items,
                                    letter_top_k, lora=written["gguf_adapter"]))
    elif src.retrieves:
        links.append(_bundle_link(src, out, measured))
    else:  # the prompt: the same model and settings, computed again
        again = score(scoring_config(src, model_cfg(src), items=items), work / "prompt")
        links.append(compare(measured, again, "the run -> prompt.json's settings, computed again"))
    ok = all(p.reproduces for p in links) and (adapter is None or adapter["active"] is not False)
    return {"reproduces": ok, "items": len(measured), "links": [p.to_dict() for p in links],
            "adapter": adapter}


def _gguf_link(src: Source, gguf: Path, folder: Path, local: dict, work: Path,
               items: int | None, letter_top_k: int | None, lora: Path | None = None) -> Parity:
    """The exported folder scored by letter in process against the GGUF served by
    llama.cpp (with `lora`: the base's GGUF and the adapter's), scored by letter."""
    from harness.export.llamacpp import LlamaServer, skip_reason

    reason = skip_reason()
    if reason:
        return Parity(f"{folder.name}/ -> {gguf.name} served by llama.cpp", 0, None, None, None,
                      None, None, reproduces=False, why=f"not checked: {reason}")
    letter = {"choice_scoring": "letter", "letter_top_k": letter_top_k}
    letter_dir = work / "letter"
    in_process = rows(letter_dir / "predictions.jsonl") if (letter_dir / "metrics.json").is_file() \
        else score(scoring_config(src, local, items=items, **letter), letter_dir)
    work.mkdir(parents=True, exist_ok=True)
    server = LlamaServer(work, model=gguf.resolve(), alias=SERVED_ALIAS,
                         tokenizer=str(folder.resolve()),
                         lora=lora.resolve() if lora else None).start()
    try:
        served = OmegaConf.merge(OmegaConf.load(config_dir() / "model" / "openai.yaml"),
                                 {"base_url": server.base_url, "name": SERVED_ALIAS,
                                  "tokenizer": str(folder.resolve()),
                                  "revision": gguf.name + (f"+{lora.name}" if lora else "")})
        got = score(scoring_config(src, OmegaConf.to_container(served), items=items, **letter),
                    work / ("gguf-lora" if lora else "gguf"))
    finally:
        server.stop()
    what = f"{gguf.name} + --lora {lora.name}" if lora else gguf.name
    return compare(in_process, got, f"{folder.name}/ -> {what} served by llama.cpp "
                                    "(both scored by letter)")


def _bundle_link(src: Source, out: Path, measured: dict[str, dict]) -> Parity:
    """serve.py's RagBundle answering the run's test questions."""
    from harness.export.bundle import RagBundle

    bundle = RagBundle(out)
    answers = bundle.answer([{"id": i, "question": r["question"], "choices": r.get("choices") or []}
                             for i, r in measured.items()])
    got = {}
    for a in answers:
        gold = measured[a["id"]].get("gold_choice")
        got[a["id"]] = {"choice": a["choice"], "retrieved": a["retrieved"],
                        "scores": {"choice_correct": float(a["choice"] == gold)
                                   if gold is not None and a["choice"] is not None else None}}
    return compare(measured, got, "the run -> serve.py (RagBundle)", retrieval=True)
