"""harness-export on the quick sweep's tiny-model runs: each strategy's export is written,
reloaded and scored on the run's test items with the same predictions (parity); one GGUF
export is served by llama.cpp and checked by letter; an adapter that does nothing is
caught; and every refusal is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from harness.export.cli import main as export_main
from harness.export.gguf import missing_reason
from harness.export.llamacpp import skip_reason


def _export(sweep: Path, out: Path, *args: str) -> tuple[int, dict | None]:
    code = export_main([str(sweep), "--out", str(out), *args])
    parity = out / "parity.json"
    return code, json.loads(parity.read_text()) if parity.is_file() else None


@pytest.mark.parametrize("variant,parts", [
    ("prompt", ["prompt.json", "tokenizer/tokenizer_config.json", "recipe.yaml"]),
    ("rag", ["rag/chunks.jsonl", "rag/index.faiss", "rag/corpus.jsonl", "serve.py"]),
    ("lora", ["adapter/adapter_config.json", "adapter/adapter_model.safetensors",
              "adapter/tokenizer_config.json", "adapter/generation_config.json", "base/config.json"]),
    ("full", ["model/model.safetensors", "model/tokenizer_config.json"]),
    ("hybrid", ["merged/model.safetensors", "rag/index.faiss", "serve.py"]),
])
def test_each_strategy_exports_and_scores_what_was_measured(quick_sweep, tmp_path, variant, parts):
    fmt = ["--format", "merged"] if variant == "hybrid" else []
    code, parity = _export(quick_sweep, tmp_path / "out", "--variant", variant, "--check",
                           "--parity-items", "36", *fmt)
    out = tmp_path / "out"
    assert code == 0, (out / "README.md").read_text() if (out / "README.md").exists() else code
    for part in parts:
        assert (out / part).exists(), part
    assert parity["reproduces"] and parity["items"] == 36
    link = parity["links"][0]
    assert link["n_items"] == 36 and link["reproduces"], link
    if variant in ("rag", "hybrid"):
        assert link["same_retrieved"] == 1.0  # serve.py / the export: the same documents, in order
    if variant != "rag":
        assert link["same_choice"] == 1.0 and link["logprob_gap_mean"] < 1e-3
        assert link["accuracy_export"] == link["accuracy_run"]
    readme = (out / "README.md").read_text()
    assert "## Parity" in readme and "reproduces" in readme and str(quick_sweep) in readme
    recipe = (out / "recipe.yaml").read_text()
    assert "commit" in recipe and f"name: {variant}" in recipe


def test_the_default_variant_is_the_most_accurate_and_serve_py_answers(quick_sweep, tmp_path):
    code, _ = _export(quick_sweep, tmp_path / "out")
    assert code == 0
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "the most accurate variant of" in readme


@pytest.mark.skipif(skip_reason() is not None or missing_reason() is not None,
                    reason=str(skip_reason() or missing_reason()))
def test_a_gguf_export_served_by_llama_cpp_reproduces_the_run(quick_sweep, tmp_path):
    code, parity = _export(quick_sweep, tmp_path / "out", "--variant", "lora", "--format", "gguf",
                           "--quant", "f32", "--check", "--letter-top-k", "49152",
                           "--parity-items", "24")
    assert code == 0, parity
    assert (tmp_path / "out" / "model-f32.gguf").stat().st_size > 1_000_000
    run_link, gguf_link = parity["links"]
    assert run_link["same_choice"] == 1.0
    assert "served by llama.cpp" in gguf_link["link"] and gguf_link["n_items"] == 24
    assert gguf_link["same_choice"] == 1.0 and gguf_link["logprob_gap_mean"] < 1e-3
    assert "python -m llama_cpp.server --model model-f32.gguf" in (tmp_path / "out" / "README.md").read_text()


def test_an_adapter_that_does_nothing_is_caught(quick_sweep, tmp_path):
    """The adapter's B matrices zeroed: the export answers as the base model does, where the
    run did not (lm-eval #2432's failure): parity fails and says why."""
    code, first = _export(quick_sweep, tmp_path / "good", "--variant", "lora", "--check")
    changed = first["adapter"]["items_where_tuning_changed_the_choice"]
    assert code == 0 and changed > 0 and first["adapter"]["active"] is True
    shutil.copytree(tmp_path / "good", tmp_path / "broken")
    weights = tmp_path / "broken" / "adapter" / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: v * 0 if "lora_B" in k else v for k, v in tensors.items()}, str(weights))
    from harness.export.check import check
    from harness.export.source import find_source

    src = find_source(quick_sweep, "lora")
    parity = check(src, tmp_path / "broken", {"adapter": tmp_path / "broken" / "adapter"})
    assert parity["adapter"]["active"] is False and not parity["reproduces"]
    assert "adapter is not active" in parity["adapter"]["why"]


def test_what_cannot_be_exported_is_refused_in_one_line(quick_sweep, tmp_path, capsys):
    def refused(*args: str) -> str:
        assert export_main([*args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("harness-export: error: ")
        return err

    assert "failed, not complete" in refused(str(quick_sweep / "5_rag_seed0_bad"), "--out",
                                             str(tmp_path / "a"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert "not empty" in refused(str(quick_sweep), "--variant", "prompt", "--out",
                                  str(tmp_path / "full"))
    assert "is for a tuned model" in refused(str(quick_sweep), "--variant", "rag", "--format",
                                             "merged", "--out", str(tmp_path / "b"))
    assert "there is no adapter" in refused(str(quick_sweep), "--variant", "full", "--format",
                                            "adapter", "--out", str(tmp_path / "c"))
    assert "choose one of" in refused(str(quick_sweep), "--variant", "lroa", "--out",
                                      str(tmp_path / "d"))
    gone = tmp_path / "gone"  # a copy of the lora run whose cached adapter was cleared
    shutil.copytree(next(quick_sweep.glob("*_lora_seed0")), gone)
    m = json.loads((gone / "metrics.json").read_text())
    m["fit"]["notes"]["artifact_dir"] = str(tmp_path / "cleared-cache" / "lora-x")
    (gone / "metrics.json").write_text(json.dumps(m))
    assert "artifact is gone" in refused(str(gone), "--out", str(tmp_path / "e"))
    served = tmp_path / "served"
    shutil.copytree(next(quick_sweep.glob("*_prompt_seed0")), served)
    m = json.loads((served / "metrics.json").read_text())
    m["served"] = {"base_url": "http://x/v1"}
    (served / "metrics.json").write_text(json.dumps(m))
    assert "its model is served" in refused(str(served), "--out", str(tmp_path / "f"))


@pytest.mark.skipif(skip_reason() is not None or missing_reason() is not None,
                    reason=str(skip_reason() or missing_reason()))
def test_a_lora_as_a_gguf_adapter_beside_its_base_reproduces_the_run(quick_sweep, tmp_path):
    code, parity = _export(quick_sweep, tmp_path / "out", "--variant", "lora", "--format",
                           "gguf-adapter", "--quant", "f32", "--check", "--letter-top-k", "49152",
                           "--parity-items", "12")
    out = tmp_path / "out"
    assert code == 0, parity
    assert (out / "adapter-f32.gguf").is_file() and (out / "base-f32.gguf").is_file()
    link = parity["links"][1]
    assert "--lora adapter-f32.gguf" in link["link"] and link["same_choice"] == 1.0
    assert "--lora_path adapter-f32.gguf" in (out / "README.md").read_text()


def test_what_the_lora_converter_cannot_carry_is_named():
    from harness.export.gguf import lora_refusal

    plain = {"peft_type": "LORA", "target_modules": ["q_proj", "v_proj"]}
    assert lora_refusal(plain) is None
    assert "DoRA" in lora_refusal({**plain, "use_dora": True})
    assert "modules_to_save" in lora_refusal({**plain, "modules_to_save": ["lm_head"]})
    assert "per-module rank" in lora_refusal({**plain, "rank_pattern": {"q_proj": 4}})
    assert "lm_head" in lora_refusal({**plain, "target_modules": ["q_proj", "lm_head"]})
    assert "LoRA only" in lora_refusal({"peft_type": "IA3"})
