"""A fair contest between strategies (experiment=fair, docs/tuning-fairly.md):

    space.py    search spaces (conf/search/<strategy>.yaml): parsed, checked against the
                strategy's config, sampled, turned into overrides
    study.py    Optuna: the studies in the sweep folder, samplers, pruners, and the reporter a
                trial's training loop prunes through
    plan.py     what a search runs, checked before any trial
    sweep.py    the trials on the validation split, then each strategy's best on the test split

The Hydra sweeper (hydra_plugins/adaptbench_search) puts them together; the runner
(harness.run) prunes a trial through study.TrialReporter, so this package imports no runner.

The report reads what the search did from the run directories alone
(harness.report.search, harness.report.expected_best)."""
