"""The report's tables: one builder per table, each returning its cells as text (see
harness.report.fmt) with a note that says how the numbers were made."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.cost.prices import api_usd_per_1k
from harness.report import fmt as f
from harness.report.cost import baselines, crossover, percentile, same_within, served_pricing
from harness.report.items import fragment
from harness.report.power import EQUIVALENCE, POWER
from harness.report.uncertainty import cluster_note, superiority
from harness.report.variants import Pairs, Variant
from harness.run_folders import Run
from harness.run_record import Metric
from harness.stats import ALPHA


@dataclass
class Table:
    key: str
    title: str
    frame: pd.DataFrame  # cells already formatted as text
    note: str = ""
    # (row, column) -> [(text, href), ...]: the HTML shows those cells as links (the pairs
    # table's discordant counts open the item explorer's view of them)
    links: dict[tuple[int, str], list[tuple[str, str]]] = field(default_factory=dict)


def accuracy_table(variants: list[Variant], metric: str, extra: Sequence[Metric] = ()) -> Table:
    rows = []
    for v in variants:
        rows.append({"variant": v.name, "seeds": len(v.seeds),
                     "items": len(v.item_ids), metric + " [95% CI]": f.ci(v.estimate),
                     "SQuAD exact match": f.number(v.mean("exact_match")), "F1": f.number(v.mean("f1")),
                     "contains": f.number(v.mean("contains")),
                     **{m.label: f.number(v.mean(m.name)) for m in extra if m.name != metric}})
    df = pd.DataFrame(rows)
    methods = {v.name: "/".join(sorted({str(m) for m in v.values("scoring_method")})) for v in variants}
    if any(methods.values()):
        df.insert(3, "choices scored by", [methods[v.name] or f.NA for v in variants])
    for col in ("SQuAD exact match", "F1", "contains"):  # generation off: say so once, not per row
        if not df.empty and (df[col] == f.NA).all():
            df = df.drop(columns=col)
    seeds = sorted({s for v in variants for s in v.seeds})
    clustered = [v for v in variants if v.estimate.n_clusters]
    if clustered:
        df.insert(3, "clusters (design effect)", [
            f"{v.estimate.n_clusters} ({f.number(v.estimate.design_effect, 2)})"
            if v.estimate.n_clusters else "items independent" for v in variants])
    return Table("accuracy", "Accuracy", df,
                 cluster_note(variants) +
                 f"Seeds: how many seeds each variant ran (values: {', '.join(map(str, seeds))}). "
                 + ("Also the metrics of your own the runs recorded: "
                    + ", ".join(f"{m.label} ({m.name}, {m.kind})" for m in extra) + ". "
                    if extra else "") +
                 "Mean over test items and seeds, with a 95% percentile-bootstrap interval that "
                 "resamples items (and seeds when there are several). Choices scored by: loglik "
                 "= each choice's log-likelihood after the prompt; letter = the choices listed "
                 "by letter and the model's next-token log-probs of the letters "
                 "(answer.choice_scoring). SQuAD exact match, F1 and contains score the "
                 "generated answer when generation was on.")


def pair_verdict(t, p_adj: float, margin: float = EQUIVALENCE) -> str:
    """A better / B better; equivalent (the CI inside +-margin); or no evidence either way,
    with the smallest difference the set could have detected."""
    if p_adj < ALPHA:
        return "A better" if t.diff > 0 else "B better"
    if t.equivalent:
        return f"equivalent (within ±{margin:.2f})"
    return f"no evidence; detects ≥ {t.mde:.3f}" if t.mde == t.mde else "no evidence"


def pairs_table(pairs: Pairs, margin: float = EQUIVALENCE) -> Table:
    rows, links = [], {}
    for a, b, t, p_adj in pairs:
        if t.a_only is not None:  # each count opens the explorer on exactly those items
            links[(len(rows), "A only / B only")] = [
                (str(t.a_only), fragment(("right", a), ("wrong", b))), (" / ", ""),
                (str(t.b_only), fragment(("right", b), ("wrong", a)))]
        rows.append({"A": a, "B": b, "A − B": f"{t.diff:+.3f}",
                     "95% CI": f"[{t.low:+.3f}, {t.high:+.3f}]",
                     "test": t.test + (f" (design effect {t.design_effect:.2f})"
                                       if t.design_effect == t.design_effect else ""),
                     "p": f"{t.p_value:.2g}", "p (Holm)": f"{p_adj:.2g}",
                     "A only / B only": f"{t.a_only} / {t.b_only}" if t.a_only is not None else "",
                     "P(A > B)": superiority(t),
                     f"detectable ({POWER:.0%} power)": f.number(t.mde),
                     "verdict": pair_verdict(t, p_adj, margin), "items": t.n_items})
    return Table("pairs", "Paired comparisons", pd.DataFrame(rows),
                 "Every pair on the items both answered. One seed each on independent items: "
                 "McNemar's exact test on the items only one of the two got right (A only / B "
                 "only). Several seeds, or items that share a cluster: a paired bootstrap over "
                 "items (over whole clusters) of the seed-averaged scores; A only / B only are "
                 "still counted. p (Holm) corrects "
                 f"for testing every pair; verdicts use it at α={ALPHA}. Detectable: the "
                 f"smallest true difference this test finds with {POWER:.0%} power at "
                 f"α={ALPHA} on these items (McNemar: exact power at the observed share of "
                 "discordant items; bootstrap: 2.8 × its standard error). A pair that is not "
                 f"significant is 'equivalent' only when its 95% CI lies inside ±{margin:.2f} "
                 "(report.equivalence_margin); otherwise the set could not tell: differences "
                 "smaller than 'detectable' would usually go unseen. In report.html each "
                 "count opens the Items section on those items. P(A > B): the share of "
                 "resamples of the test items (their clusters) and of each variant's seeds in "
                 "which A scored above B (ties half; Bouthillier et al. 2021), with its 95% "
                 "interval over the item draws when both ran several seeds.", links)


def cost_table(variants: list[Variant], costs: pd.DataFrame, queries: int) -> Table:
    rows = []
    bases = baselines(variants, costs)
    basis = costs.attrs.get("basis", "measured")
    same = same_within(costs)
    by_name = {v.name: v for v in variants}
    searched = "tune_usd" in costs and costs.tune_usd.notna().any()
    for _, c in costs.iterrows():
        local = f"{c.hardware} @ ${c.usd_per_hour:.2f}/h" if not math.isnan(c.usd_per_hour) \
            else "no price"
        row = {"variant": c.variant,
               "priced as": f"{served_pricing(by_name[c.variant])}; build on {local}"
               if c.served else local,
               f"build ({basis})": f.seconds(c.build_s), "build cost": f.usd(c.retrain_usd)}
        if searched:
            row["search (tuning) cost"] = f.DASH if math.isnan(c.tune_usd) else f.usd(c.tune_usd)
        row |= {"artifact": f.nbytes(c.artifact_bytes), "per 1k queries": f.usd(c.usd_per_1k),
                f"total, {queries:,} queries": f.usd(c.total_usd)}
        for bname, b in bases.items():
            if bname == c.variant or not c.tuned:
                row[f"break-even vs {bname}"] = f.DASH
            else:
                row[f"break-even vs {bname}"] = f.queries(crossover(c, b, same))
        rows.append(row)
    if basis == "modelled":
        how = ("Seconds are modelled (report.cost_basis=modelled): each run's counted work "
               "(tokens, FLOPs, training passes, embeddings) divided by the throughput this "
               "machine reached in a calibration, so a busy machine does not move them; "
               "measured seconds are beside them in 'Measured and modelled seconds'. "
               f"Costs within {same:.0%} count as equal: the cost model's own uncertainty "
               "(calibration repeat spread and fit).")
    else:
        how = ("Seconds are measured (report.cost_basis=measured"
               + (f"; {costs.attrs['why']}" if costs.attrs.get("why") else "")
               + "): single timings, which other processes on the machine inflate. "
               f"Per-query costs within {same:.0%} count as equal, the spread of repeated "
               "timings of one computation on a shared CPU.")
    served = ("" if not costs.get("served", pd.Series(dtype=bool)).any() else
              " A served model's queries are priced by its requests: the tokens the server "
              "reported (usage) at its per-token prices, or, for a self-hosted endpoint priced "
              "per hour, the seconds per query measured at its concurrency; its retrieval runs "
              "here at this machine's price. A served model has no modelled seconds (its time "
              "is the endpoint's, not work this machine's profile describes), so its seconds "
              "are measured whatever report.cost_basis says.")
    return Table("cost", "Cost", pd.DataFrame(rows),
                 "Build = training or indexing (a cache hit is charged what the original build "
                 "took). Per-query cost = predict seconds per query × price."
                 + (" A searched variant's build in the total and the break-even is its whole "
                    "search (every trial's build and validation predictions, its own training "
                    "among them); its build cost is one more build, what a retrain costs when "
                    "the data changes." if searched else "") + served
                 + " Break-even: the "
                 "query volume after which a tuned variant's extra build cost is repaid by "
                 "cheaper queries ('never' when it is not cheaper per query). " + how
                 + " Prices come from conf/cost and are assumptions.")


def api_table(variants: list[Variant]) -> Table | None:
    prices = {}
    for v in variants:
        for r in v.runs:
            prices.update((r.metrics.get("cost") or {}).get("api") or {})
    if not prices:
        return None
    rows = []
    for v in variants:
        if v.tuned:
            continue
        n = v.mean("n_examples")
        ptok, ctok = v.mean("prompt_tokens") / n, v.mean("completion_tokens") / n
        row = {"variant": v.name, "prompt tokens/query": f"{ptok:.0f}",
               "completion tokens/query": f"{ctok:.1f}"}
        for name, p in prices.items():
            row[f"{name} per 1k queries"] = f.usd(api_usd_per_1k(ptok, ctok, p))
        rows.append(row)
    return Table("api", "Hosted API price comparison", pd.DataFrame(rows),
                 "What the measured token counts of the untuned variants would cost at the "
                 "per-token prices in cost.api (tuned models are not priced this way).")


def latency_table(variants: list[Variant]) -> Table:
    rows = []
    for v in variants:
        answer = v.latency - v.retrieval_latency
        has_ret = bool(np.nanmax(v.retrieval_latency) > 0) if v.retrieval_latency.size else False
        rows.append({
            "variant": v.name, "p50": f.seconds(percentile(v.latency, 50)),
            "p95": f.seconds(percentile(v.latency, 95)), "p99": f.seconds(percentile(v.latency, 99)),
            "retrieval p50 / p95": (f"{f.seconds(percentile(v.retrieval_latency, 50))} / "
                                    f"{f.seconds(percentile(v.retrieval_latency, 95))}") if has_ret
            else "no retrieval",
            "model p50 / p95": f"{f.seconds(percentile(answer, 50))} / {f.seconds(percentile(answer, 95))}",
            "seconds per query (throughput)": f.seconds(v.mean("seconds_per_query")),
        })
    return Table("latency", "Latency", pd.DataFrame(rows),
                 "Per query, the wall time of the batches that answered it (batch size "
                 "answer.batch_size), split into retrieval (embedding the question and "
                 "searching the index) and the model (scoring choices, generating). Seconds "
                 "per query is predict time / queries.")


def attribution_table(variants: list[Variant]) -> Table:
    cols = {"recall@k": "recall_at_k", "MRR": "mrr", "citation precision": "citation_precision",
            "citation recall": "citation_recall"}
    rows = [{"variant": v.name, **{c: f.number(v.mean(k)) if v.can_cite else f.CANNOT_CITE
                                   for c, k in cols.items()}} for v in variants]
    return Table("attribution", "Source attribution", pd.DataFrame(rows),
                 "Retrieval variants cite the documents their passages came from; recall@k "
                 "and MRR check the gold source among them. Variants that do not cite answer "
                 "from weights and cannot name a source.")


def retrieval_table(variants: list[Variant]) -> Table | None:
    """Every variant that retrieves: what it searched with and how well, and at what cost."""
    rows = []
    for v in variants:
        if not v.retrieves:
            continue
        notes = v.values("notes", ("fit",))
        first = notes[0] if notes else {}
        k = v.values("retrieval_k")
        rows.append({
            "variant": v.name, "retriever": str(first.get("retriever", f.NA)),
            "chunks": (f"{first['chunker']} {first['chunk_size']}/{first['chunk_overlap']}"
                       if "chunker" in first else f.NA),
            "chunks cut by the embedder": _cut(first, v),
            "k": str(k[0]) if k else f.NA,
            "recall@k": f.number(v.mean("recall_at_k")), "hit@k": f.number(v.mean("hit_at_k")),
            "MRR": f.number(v.mean("mrr")), "nDCG@10": f.number(v.mean("ndcg_at_10")),
            "retrieval p50 / p95": f"{f.seconds(percentile(v.retrieval_latency, 50))} / "
                                   f"{f.seconds(percentile(v.retrieval_latency, 95))}",
            "index build": f.seconds(v.mean("build_s", ("fit", "notes"))),
            "index size": f.nbytes(v.mean("artifact_bytes", ("fit",))),
        })
    if not rows:
        return None
    return Table("retrieval", "Retrieval", pd.DataFrame(rows),
                 "Per variant that retrieves: the retriever (dense: the embedder over FAISS; bm25; "
                 "hybrid: both, fused), the chunker (size/overlap in words, sentences or tokens), "
                 "recall@k and hit@k of the gold source documents among the top k, MRR, nDCG@10 "
                 "(binary relevance, over the first 10 documents it ranks), the search latency per "
                 "query (its batch's wall time, reranking included), the index build seconds "
                 "(when computed) and its size on disk or in memory. Chunks cut by the "
                 "embedder: chunks longer than the embedder's window (max_seq_length tokens), "
                 "whose tails were never embedded; chunks are split to fit first (how many: "
                 "in brackets), so this is 0 unless a single word is longer than the window. "
                 "Questions cut: test questions longer than the window (their tails did not "
                 "take part in the search).")


def _cut(notes: dict, v: Variant) -> str:
    if "chunks_over_window" not in notes:
        return f.NA
    queries = max([int((w or {}).get("queries_over_window", 0)) for w in v.values("predict_work")]
                  or [0])
    return (f"{notes['chunks_over_window']} of {notes.get('n_chunks', '?')} "
            f"(window {notes['embedder_window_tokens']}; {notes['chunks_split_to_fit']} split "
            f"to fit); {queries} question(s) cut")


def forgetting_table(variants: list[Variant]) -> Table:
    keys = ("control_perplexity_before", "control_perplexity_after", "control_perplexity_delta",
            "control_greedy_agreement", "control_greedy_f1")
    cols = ("control perplexity before", "after", "change", "greedy answers unchanged",
            "answer token F1 vs base")
    rows = []
    for v in variants:
        if not v.tuned or not v.measured_forgetting:
            rows.append({"variant": v.name,
                         **dict.fromkeys(cols, f.NOT_TUNED if not v.tuned else f.NOT_MEASURED)})
            continue
        before, after, delta, agree, f1 = (v.forgetting(k) for k in keys)
        low, high = (v.forgetting(f"control_perplexity_delta_{e}") for e in ("low", "high"))
        rows.append({"variant": v.name, cols[0]: f.number(before, 2), cols[1]: f.number(after, 2),
                     cols[2]: f.signed_ci(delta, low, high), cols[3]: f.number(agree, 2),
                     cols[4]: f.number(f1, 2)})
    return Table("forgetting", "Forgetting", pd.DataFrame(rows),
                 "On a shipped control set of general text and prompts unrelated to the task: "
                 "perplexity before and after tuning (the change with a 95% interval: a paired "
                 "bootstrap over 32-token blocks of the control text, the same blocks for both "
                 "models), and how many greedy answers stayed the same. Untuned strategies "
                 "leave the model's weights unchanged; 'not measured': a strategy that trains "
                 "but did not run the control set (FitReport.forgetting).")


def seen_table(variants: list[Variant], metric: str = "choice_accuracy") -> Table:
    rows = []
    for v in variants:
        if not v.tuned:
            rows.append({"variant": v.name, "seen (train split)": f.NOT_TUNED,
                         "unseen (test)": f.number(v.estimate.mean), "gap": f.NOT_TUNED})
            continue
        seen = v.mean(metric, ("seen",))  # NA for a metric the seen questions lack
        rows.append({"variant": v.name, "seen (train split)": f.number(seen),
                     "unseen (test)": f.number(v.estimate.mean),
                     "gap": f.signed(seen - v.estimate.mean)})
    return Table("seen", "Seen vs unseen questions", pd.DataFrame(rows),
                 "Tuned variants are also scored on train-split questions they were trained "
                 "on. Test questions ask about facts in the training documents too, but in "
                 "wording never trained on: the gap shows memorized question forms.")


def build_table(variants: list[Variant]) -> Table:
    rows = []
    fit = ("fit",)
    for v in variants:
        rows.append({
            "variant": v.name,
            "trainable params": f.integer(v.mean("trainable_params", fit)) if v.tuned else f.NOT_TUNED,
            "train tokens": f.integer(v.mean("train_tokens", fit)) if v.tuned else f.NOT_TUNED,
            "FLOPs (est.)": f"{v.mean('flops_est', fit):.3g}" if v.tuned else f.NOT_TUNED,
            "artifact": f.nbytes(v.mean("artifact_bytes", fit)),
            "artifact at": _artifact_at(v),
            **_memory_cells(v),
            "weights trained on": _trained_weights(v),
            "cache hit": ", ".join(str(bool((r.metrics.get("fit") or {}).get("cache_hit")))
                                   for r in v.runs),
        })
    return Table("build", "What was built", pd.DataFrame(rows),
                 "Artifact: the adapter or checkpoint (tuned) or the embedding index (RAG); "
                 "'artifact at': the cache folder it sits in, which harness-export carries out "
                 "with its tokenizer, settings and a parity check (docs/export.md). "
                 "FLOPs = 2·N·T + 2·N_bwd·T + 2·N_train·T. Peak memory, measured: the run's "
                 "peak resident set (CPU) or allocated GPU memory, less what the process held "
                 "when the run started; predicted: the memory model's peak for what the run "
                 "computed, and the phase it falls in (load, fit, predict; docs/cost-model.md). "
                 "Weights trained on: the memory "
                 "the trained model's parameters held (QLoRA: the 4-bit base, packed, plus "
                 "the adapters) and their precision.")


def _artifact_at(v: Variant) -> str:
    """Where the variant's build sits (harness-export carries it out, docs/export.md)."""
    dirs = sorted({str(((r.metrics.get("fit") or {}).get("notes") or {}).get("artifact_dir"))
                   for r in v.runs} - {"None"})
    if dirs:
        return ", ".join(dirs)
    if v.retrieves:
        return "the index, rebuilt from the corpus (embeddings cached)"
    return f.DASH


def _memory_cells(v: Variant) -> dict[str, str]:
    """Measured and predicted peak memory (metrics.json -> memory); runs recorded before
    the prediction existed show their absolute peak."""
    measured = v.mean("measured_mb", ("memory",))
    if measured != measured:  # NaN: no memory record
        return {"peak memory, measured": f.nbytes(v.mean("peak_mem_mb") * 2**20),
                "predicted": f.NA}
    predicted = v.mean("predicted_mb", ("memory",))
    phases = {str((r.metrics.get("memory") or {}).get("peak_phase")) for r in v.runs}
    return {"peak memory, measured": f.nbytes(measured * 2**20),
            "predicted": f"{f.nbytes(predicted * 2**20)} ({', '.join(sorted(phases))})"
            if predicted == predicted else f.NA}


def _trained_weights(v: Variant) -> str:
    if not v.tuned:
        return f.NOT_TUNED
    mb = v.mean("train_weights_mb", ("fit", "notes"))
    if mb != mb:  # NaN: written before this was recorded
        return f.NA
    precision = {str(((r.metrics.get("fit") or {}).get("notes") or {}).get("train_precision"))
                 for r in v.runs}
    return f"{f.nbytes(mb * 2**20)} ({', '.join(sorted(precision))})"


def failures_table(failures: list[Run]) -> Table:
    rows = [{"run": r.path.name, "variant": r.variant, "status": r.status,
             "error": str(r.metrics.get("error") or "killed or still running: no final "
                          "metrics").splitlines()[0][:200]} for r in failures]
    return Table("failures", "Failed runs", pd.DataFrame(rows),
                 "Runs that raised (their traceback is in their metrics.json) or never finished. "
                 "Re-invoking the sweep with the same hydra.sweep.dir redoes them.")
