"""The cost model, in one place, depending on no model, tuning or retrieval code:

    work.py         the work a run does, counted (positions, FLOPs, decode steps, training
                    passes, embeddings, searches), never timed
    profile.py      this machine's throughput per kind of work, fitted to a short
                    calibration, cached per machine, model, dtype and threads; modelled
                    seconds = work / throughput. The measurements themselves run the model,
                    so the app that holds it passes them in (harness.run.calibration)
    projection.py   the same work on other hardware, by a roofline (conf/cost/hardware/)
    prices.py       what seconds and tokens cost: per hour of a machine, per token of a
                    served model (Price), break-even
    fields.py       what a run records of all this in metrics.json

harness-calibrate (harness.run.calibrate_cli) measures the profile ahead of a sweep. The
report's cost tables (harness.report.cost, harness.report.cost_tables) read the run records
with work.py, projection.py and prices.py, which import no torch; profile.py is imported by
the runner and harness-calibrate only.
"""

# Other processes above this share of the CPUs while a profile section was measured: the
# section is flagged busy (the report says so) and measured again when the machine is quiet.
BUSY_SHARE = 0.2
