"""The export's README.md: what it is and where it came from, its files, the commands that
serve it (llama.cpp, vLLM, transformers, and the harness pointed back at it), and the parity
table when --check ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.export.check import SERVED_ALIAS
from harness.export.source import Source

QUANT_DRIFT = ("Quantization moves log-probabilities by design: f32 and f16 keep the weights "
               "(f16: to 3 significant digits) and should flip no choice; q8_0 typically moves "
               "a few hundredths of a nat; 4-bit types move more. The table gives what was "
               "measured, not what is expected.")


def _number(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _size(path: Path) -> str:
    n = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else path.stat().st_size
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _serve_lines(src: Source, out: Path, written: dict[str, Path]) -> list[str]:
    lines = []
    folder = written.get("merged") or written.get("model")
    if "gguf" in written:
        gguf = written["gguf"].name
        lines += ["llama.cpp (the llama-cpp-python server, or llama.cpp's own `llama-server -m`):",
                  "", "```bash",
                  f"python -m llama_cpp.server --model {gguf} --model_alias {SERVED_ALIAS} --port 8000",
                  "```", ""]
    if "gguf_adapter" in written:
        base, lora = written["gguf_base"].name, written["gguf_adapter"].name
        lines += ["llama.cpp with the adapter kept separate (the base's GGUF and `--lora`):", "",
                  "```bash",
                  f"python -m llama_cpp.server --model {base} --lora_path {lora} "
                  f"--model_alias {SERVED_ALIAS} --port 8000",
                  f"# llama.cpp's own: llama-server -m {base} --lora {lora} --port 8000", "```", ""]
    if folder is not None:
        lines += ["vLLM, or transformers:", "", "```bash", f"vllm serve {folder.name}", "```", "",
                  "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
                  f'model = AutoModelForCausalLM.from_pretrained("{folder.name}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{folder.name}")', "```", ""]
    if "adapter" in written:
        base = _adapter_base(written["adapter"])
        lines += ["vLLM with the adapter kept separate (LoRA; vLLM refuses DoRA and adapters on "
                  "lm_head or with modules_to_save: export --format merged for those):", "",
                  "```bash", f"vllm serve {base} --enable-lora --lora-modules "
                  f"{src.run.strategy}=adapter", "```", "",
                  "peft: `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), "
                  '"adapter")`; transformers also loads the folder itself '
                  "(`from_pretrained(\"adapter\")`, peft installed).", ""]
    if "serve" in written:
        lines += ["Retrieval exactly as the run did (needs `pip install adaptbench`):", "",
                  "```bash", 'python serve.py "your question"',
                  "python serve.py < questions.jsonl   # {\"question\": ..., \"choices\": [...]} per line",
                  "```", "",
                  "rag/ holds the same index as files for a serving stack of your own: "
                  "chunks.jsonl (row i is the index's vector i), index.faiss and vectors.npy "
                  "(dense; inner product over normalised vectors), bm25/ (bm25s's format), "
                  "retriever.json (chunker, embedder, k, fusion, reranker).", ""]
    if "gguf" in written or folder is not None:
        target = (f"model.base_url=http://127.0.0.1:8000/v1 model.name={SERVED_ALIAS} "
                  f"model.tokenizer={(folder or out).name}")
        lines += ["The harness pointed back at a served copy (to re-measure it on your task):", "",
                  "```bash", f"harness-run model=openai {target} strategy=prompt", "```", ""]
    return lines


def _adapter_base(adapter: Path) -> str:
    import json

    return json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]


def _gap(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2g} nats"


def _parity_lines(parity: dict[str, Any]) -> list[str]:
    f = lambda x, d=3: "n/a" if x is None else f"{x:.{d}f}"  # noqa: E731
    lines = ["## Parity: does the export score what was measured?", "",
             ("**The export reproduces the run.**" if parity["reproduces"] else
              "**The export does not reproduce the measured run.**") +
             f" Scored on {parity['items']} of the run's test items through the harness's own "
             "scoring.", "",
             "| link | items | same choice | same choice, sure items | log-prob gap (mean) | "
             "accuracy: run | accuracy: export | McNemar p | same retrieved | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p in parity["links"]:
        lines.append(f"| {p['link']} | {p['n_items']} | {f(p['same_choice'])} | "
                     f"{f(p['same_choice_sure'])} ({p['sure_items']}) | "
                     f"{_gap(p['logprob_gap_mean'])} | {f(p['accuracy_run'])} | "
                     f"{f(p['accuracy_export'])} | {f(p['p_value'], 3)} | "
                     f"{f(p['same_retrieved'])} | "
                     f"{'reproduces' if p['reproduces'] else 'does not: ' + p['why']} |")
        if p["flipped"]:
            lines.append(f"|  | flipped: {', '.join(p['flipped'][:20])}"
                         + (" ..." if len(p["flipped"]) > 20 else "") + " ||||||||||")
    a = parity.get("adapter")
    if a:
        lines += ["", "The tuning is in effect: " + (
            f"on the {a['items_where_tuning_changed_the_choice']} items where tuning changed the "
            f"base model's choice, the export chose as the run did on "
            f"{a['export_sides_with_run']:.0%}." if a["active"] else
            (a["why"] if a["active"] is False else f"not tested ({a['why']})."))]
    return lines + ["", "Sure items: those whose top two choices the run scored at least 0.5 nats "
                    "apart; a changed choice among them fails the check beyond 2% of them, one "
                    "among nearer ties is the arithmetic's noise (bfloat16 moves a log-prob by "
                    "about 0.1 nats) and is listed, not failed. The log-prob gap leaves out "
                    "letters outside the top tokens read.", "", QUANT_DRIFT, "",
                    ".parity/ holds the scoring runs behind this table (config.yaml, "
                    "metrics.json and predictions.jsonl of each).", ""]


def write_readme(src: Source, out: Path, written: dict[str, Path],
                 parity: dict[str, Any] | None) -> Path:
    m = src.metrics
    metric = m.get("primary_metric", "choice_accuracy")
    lines = [f"# Export of {src.label}", "",
             f"From {src.run.path} ({src.why}): strategy {m.get('strategy')}, model "
             f"{m.get('model')}, task {m.get('task')}, seed {m.get('seed')}; it measured "
             f"{metric} {_number(m.get(metric))} on {m.get('n_examples')} {m.get('split', 'test')} items "
             "(measured_metrics.json). recipe.yaml is the run's resolved config.", ""]
    if src.peft and "merged" in written:
        qlora = bool((src.config.strategy.get("adapter") or {}).get("quantize"))
        lines += ["merged/ folds the adapter into a float32 copy of the base model (peft's "
                  "merge_and_unload)." + (
                      " This QLoRA adapter was trained on a 4-bit copy of the base but served, "
                      "in the run, on the full-precision base: it is merged into that one (the "
                      "4-bit base dequantized, in effect), never into 4-bit weights: merging "
                      "into quantized weights loses quality." if qlora else ""), ""]
    if "adapter" in written:
        lines += [f"adapter/ is the PEFT adapter as the run trained it; its base model: "
                  f"{_adapter_base(written['adapter'])} (adapter_config.json's "
                  "base_model_name_or_path).", ""]
    lines += ["## Files", "", "| part | path | size |", "|---|---|---|"]
    lines += [f"| {k} | {p.relative_to(out) if p.is_relative_to(out) else p} | {_size(p)} |"
              for k, p in written.items() if p.exists()]
    lines += ["", "## Serve it", "", *_serve_lines(src, out, written)]
    if parity is not None:
        lines += _parity_lines(parity)
    else:
        lines += ["Not checked: `harness-export ... --check` scores the export on the run's "
                  "test items and compares.", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
