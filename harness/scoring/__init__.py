"""How answers are scored.

    lexical    SQuAD exact match, token F1, containment (harness.scoring.lexical)
    items      the per-item scores of a prediction and their means (score_item, aggregate)
    semantic   answer-gold cosine with the run's embedder, called at a calibrated threshold
    grounded   how much of a citing strategy's answer its cited passages support
    judge      an LLM grades each answer with a versioned rubric, by log-likelihood
    agreement  how far a metric agrees with another signal (accuracy, Cohen's kappa, CI)
    free_form  the runner's entry point: every free-form score of a run at once
"""

from harness.scoring.items import aggregate, score_item
from harness.scoring.lexical import contains, exact_match, normalize, token_f1, words

__all__ = ["aggregate", "contains", "exact_match", "normalize", "score_item", "token_f1", "words"]
