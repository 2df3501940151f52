"""`harness-export DIR --out OUT`: carry out what a run built, with what it needs to be
served, and (--check) prove that it scores what the run measured.

DIR is a run folder, or a sweep folder and --variant (default: the most accurate variant of
the report). What each strategy exports (README.md in OUT lists it, with the commands to
serve it and the parity table):

    prompt         prompt.json (prompt, decoding, shots and their pool, model reference)
    rag, retrieval_only   rag/ (corpus, chunk store, FAISS/BM25 index, settings) and serve.py
    lora, ia3, prompt tuning, QLoRA   adapter/ (PEFT, its base referenced); --format merged:
                   merged/ (a Hugging Face folder, merged in float32); --format gguf: the
                   merged weights through llama.cpp's converter (--quant f16|q8_0|f32);
                   --format gguf-adapter: a LoRA as a GGUF adapter beside the base's GGUF
    full           model/ (a Hugging Face folder); --format gguf as above
    hybrid         both halves

Always: recipe.yaml (the run's resolved config, its commit and where it came from), the
tokenizer with its chat template, and generation_config.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import OmegaConf

from harness.errors import UserError
from harness.export.source import Source, find_source

FORMATS = ("auto", "adapter", "merged", "gguf", "gguf-adapter")
QUANTS = ("f16", "q8_0", "f32", "bf16")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="harness-export", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("dir", type=Path, help="a run folder, or a sweep folder (with --variant)")
    ap.add_argument("--out", type=Path, required=True, help="the export folder (new or empty)")
    ap.add_argument("--variant", default=None,
                    help="in a sweep: the variant as the report names it (default: the most "
                         "accurate one); its lowest seed's run")
    ap.add_argument("--format", choices=FORMATS, default="auto",
                    help="a tuned run's model: adapter (PEFT; auto for an adapter), merged "
                         "(a Hugging Face folder), gguf (merged, then llama.cpp's converter), "
                         "gguf-adapter (a LoRA as llama.cpp's --lora file, beside the base's GGUF)")
    ap.add_argument("--quant", choices=QUANTS, default="f16",
                    help="--format gguf: the GGUF's type (f16 keeps what bf16 held; q8_0 "
                         "quantizes: its drift is measured by --check)")
    ap.add_argument("--check", action="store_true",
                    help="score the export on the run's test items and compare (parity.json)")
    ap.add_argument("--parity-items", type=int, default=None, metavar="N",
                    help="--check: the first N of the run's test items (default: all)")
    ap.add_argument("--letter-top-k", type=int, default=None, metavar="K",
                    help="--check of a GGUF: next tokens read for the letters (default: the "
                         "run's answer.letter_top_k)")
    ap.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        out = export(args)
    except UserError as e:
        print(f"harness-export: error: {e}", file=sys.stderr)
        return 2
    print(f"Export: {out}\n        {out / 'README.md'}")
    verdicts = json.loads((out / "parity.json").read_text()) if (out / "parity.json").is_file() \
        else None
    if verdicts:
        for p in verdicts["links"]:
            print(f" - {p['link']}: " + ("reproduces" if p["reproduces"] else
                                         f"DOES NOT reproduce ({p['why']})"))
        if verdicts.get("adapter") and verdicts["adapter"].get("active") is False:
            print(f" - {verdicts['adapter']['why']}")
        return 0 if verdicts["reproduces"] else 1
    return 0


def _check_args(src: Source, args: argparse.Namespace) -> None:
    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        raise UserError(f"{args.out}: the folder exists and is not empty; choose another "
                        "--out or pass --force")
    if args.format != "auto" and not src.trains:
        raise UserError(f"{src.run.path}: --format {args.format} is for a tuned model, and "
                        f"'{src.run.strategy}' trains none: it exports its "
                        f"{'retrieval bundle' if src.retrieves else 'prompt'} (leave --format out)")
    if args.format in ("adapter", "gguf-adapter") and not src.peft:
        raise UserError(f"{src.run.path}: '{src.run.strategy}' tuned every weight: there is no "
                        "adapter; export --format auto (its model folder), or gguf")
    if args.parity_items is not None and args.parity_items < 1:
        raise UserError("--parity-items must be >= 1")


def export(args: argparse.Namespace) -> Path:
    src = find_source(args.dir, args.variant)
    _check_args(src, args)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    written = write_parts(src, out, args.format, args.quant)
    write_recipe(src, out)
    parity = None
    if args.check:
        from harness.export.check import check

        parity = check(src, out, written, items=args.parity_items, letter_top_k=args.letter_top_k)
        (out / "parity.json").write_text(json.dumps(parity, indent=2) + "\n", encoding="utf-8")
    from harness.export.readme import write_readme

    write_readme(src, out, written, parity)
    return out


def write_parts(src: Source, out: Path, fmt: str, quant: str) -> dict[str, Path]:
    """Every part the run's kind exports; {part: path}."""
    from harness.export.bundle import build_task_of, write_prompt, write_retrieval
    from harness.export.model import write_model, write_tokenizer

    written: dict[str, Path] = {}
    written.update(write_model(src, out, fmt, quant))
    task = None
    if src.kind == "prompt":
        written["prompt"] = write_prompt(src, out)
    if src.retrieves:
        task = build_task_of(src.config)
        written["rag"] = write_retrieval(src, out, _fitted_strategy(src, task), task)
        written["serve"] = out / "serve.py"
    if not src.trains:  # the base model's tokenizer and decoding settings
        write_tokenizer(src, out / "tokenizer")
        written["tokenizer"] = out / "tokenizer"
    return written


def _fitted_strategy(src: Source, task):
    """The run's retrieval strategy, built from its config and fitted on its corpus (its
    embeddings come from the cache the run filled)."""
    from harness.export.bundle import _strategy_for_serving
    from harness.models import get_lm
    from harness.run.compose import strategy_factory

    cfg = _strategy_for_serving(OmegaConf.create(OmegaConf.to_container(src.config)))
    cfg.progress = False  # a tuned hybrid's index is built around the base model: the same index
    lm = get_lm(OmegaConf.to_container(cfg.model, resolve=True))
    strategy = strategy_factory(cfg)(lm)
    strategy.fit(task)
    return strategy


def write_recipe(src: Source, out: Path) -> None:
    """recipe.yaml: the run's resolved config, and where and when it came from."""
    versions = src.metrics.get("versions") or {}
    head = (f"# Exported {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {src.run.path}\n"
            f"# ({src.why}); adaptbench {versions.get('adaptbench', '?')}, commit "
            f"{versions.get('git_commit') or 'unknown'}. The run's config, resolved:\n")
    (out / "recipe.yaml").write_text(head + OmegaConf.to_yaml(src.config), encoding="utf-8")
    shutil.copyfile(src.run.path / "metrics.json", out / "measured_metrics.json")


if __name__ == "__main__":
    raise SystemExit(main())
