# Settings of the scoring step, sourced before it runs.
export DECISION_THRESHOLD=0.5
export REPORT_DIR=/valohai/outputs/report
