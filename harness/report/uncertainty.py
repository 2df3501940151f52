"""How sure the report's numbers are, in words: how the items were resampled (clusters,
their design effect, the effective number of items) and how often one variant beat another
(P(A > B)). The statistics themselves: harness.stats."""

from __future__ import annotations

from harness.report import fmt as f
from harness.report.variants import Variant

FEW_CLUSTERS = 20  # below this many clusters a cluster bootstrap's interval is itself unsure


def cluster_note(variants: list[Variant]) -> str:
    """How the items were resampled: clusters (their number, the design effect, the
    effective number of items) or one by one."""
    est = [v.estimate for v in variants if v.estimate.n_clusters]
    if not est:
        by = sorted({v.cluster_by for v in variants})
        return ("Items resampled one by one: " + ("clustering is off (cluster_by=none). "
                if by == ["none"] else "no two test items share a cluster "
                f"(cluster_by={'/'.join(by)}). "))
    by = sorted({v.cluster_by for v in variants})
    e = est[0]
    deffs = [x.design_effect for x in est if x.design_effect == x.design_effect]
    text = (f"Questions that share a cluster (cluster_by={'/'.join(by)}: task.cluster_by or "
            "report.cluster_by; source: the first source document) are resampled together, "
            f"since they can fail together: {e.n_clusters} clusters of {e.n_items} items; the "
            f"design effect (clustered variance / independent) is "
            f"{min(deffs):.2f}-{max(deffs):.2f} across the variants, so the set is worth "
            f"about {min(x.effective_items for x in est):.0f}-{max(x.effective_items for x in est):.0f} "
            "independent items (Miller 2024, arXiv 2411.00640). " if deffs else "")
    if deffs and max(deffs) < 1.2:
        text += "The design effect is near 1 here: clustering changes the intervals little. "
    if e.n_clusters < FEW_CLUSTERS:
        text += (f"**With {e.n_clusters} clusters (fewer than {FEW_CLUSTERS}) the interval is "
                 "itself unreliable.** ")
    return text



def superiority(t) -> str:
    """P(A > B) and, with several seeds on both sides, its interval."""
    if t.superior != t.superior:
        return f.NA
    text = f"{t.superior:.2f}"
    return text + (f" [{t.superior_low:.2f}, {t.superior_high:.2f}]"
                   if t.superior_low == t.superior_low else "")
