#!/usr/bin/env bash
# The exact commands behind the evaluation harness's published results
# (docs/results/): calibration of the judge, the 204-question pools, their replay,
# the live run of the raw judge, the calibrated judge and the probe side by side,
# the held-out equal-compute test, Game of 24 and the harness's own scaling.
#
#   pip install -e ".[llamacpp,bench,calibration]"
#   bash examples/benchmarks/evaluation_harness.sh calibration record replay live
#   bash examples/benchmarks/evaluation_harness.sh all          # every stage, hours on 2 cores
#   DRY_RUN=1 bash examples/benchmarks/evaluation_harness.sh all  # print the commands only
#
# Outputs land in bench-results/ (JSON, Markdown, PNG); record and collect resume
# where an interrupted run stopped. SHARED points at the shared data folder.
set -euo pipefail

SHARED="${SHARED:-../shared}"
OUT=bench-results
CAL="$OUT/calibration"

run() {
    if [[ -n "${DRY_RUN:-}" ]]; then
        printf '%q ' "$@"
        printf '\n'
    else
        printf '+ %s\n' "$*" >&2
        "$@"
    fi
}

# Monte-Carlo success rates of SmolLM2 on 50 calibration questions (suite seed 0),
# every calibrator compared on the held-out 30%, and the judge's calibrators saved.
calibration() {
    run langchain-adaptive calibrate collect --per-level 5 --n-val 4 --n-mc 4 --max-tokens 64 \
        --threads 2 --out "$CAL/arithmetic.jsonl"
    run langchain-adaptive calibrate eval --data "$CAL/arithmetic.jsonl" --out "$CAL/report.json"
    for method in isotonic quantile platt; do
        run langchain-adaptive calibrate fit --data "$CAL/arithmetic.jsonl" --method "$method" \
            --out "$CAL/judge-$method"
    done
}

# 16 samples on each of 204 test questions (suite seed 1, the probe's training
# questions left out), with the probe's and the judge's question estimates.
record() {
    run langchain-adaptive bench record --per-level 21 --samples 16 --max-tokens 128 \
        --prms probe,judge --threads 2 --out "$OUT/arithmetic-pools.jsonl"
}

# Every policy on the pools, the judge also through each saved calibrator.
replay() {
    run langchain-adaptive bench replay "$OUT/arithmetic-pools.jsonl" \
        --calibrator "judge-isotonic=judge:$CAL/judge-isotonic" \
        --calibrator "judge-quantile=judge:$CAL/judge-quantile" \
        --calibrator "judge-platt=judge:$CAL/judge-platt" \
        --no-batch --floor-samples 4 --replicates 200 \
        --out "$OUT/arithmetic-replay-calibrated-judge.json"
}

# New samples for IAS budgeted by the raw judge, the calibrated judge and the
# probe, one run, compared with the pools' best-of-N on the same questions.
live() {
    run langchain-adaptive bench live --per-level 21 --max-tokens 128 --max-samples 16 \
        --threads 2 --policies "ias:judge@0.9,ias-floor4:judge-isotonic@0.9,ias-floor4:probe@0.9" \
        --calibrator "judge-isotonic=judge:$CAL/judge-isotonic" \
        --baseline-pools "$OUT/arithmetic-pools.jsonl" --out "$OUT/arithmetic-live-three-prms.json"
}

# Floored probe IAS against the raw judge at equal compute on 361 held-out questions.
heldout() {
    run langchain-adaptive bench record --per-level 40 --suite-seed 2 --exclude-suite 5:0,21:1 \
        --samples 16 --max-tokens 128 --prms probe,judge --threads 2 \
        --out "$OUT/arithmetic-pools-heldout.jsonl"
    run langchain-adaptive bench replay "$OUT/arithmetic-pools-heldout.jsonl" \
        --estimators probe,judge --no-batch --floor-samples 1 \
        --confidences 0.5,0.7,0.8,0.9,0.95,0.99 --replicates 200 \
        --compare "ias-floor1[probe]@0.9" "ias[judge]@0.7" \
        --out "$OUT/arithmetic-replay-heldout361-floor1.json"
    run langchain-adaptive bench live --per-level 40 --suite-seed 2 --exclude-suite 5:0,21:1 \
        --max-tokens 128 --max-samples 16 --threads 2 \
        --policies "ias-floor1:probe@0.9,ias:judge@0.7" \
        --baseline-pools "$OUT/arithmetic-pools-heldout.jsonl" \
        --out "$OUT/arithmetic-live-equal-compute.json"
}

# The 100 GPT-4 Game-of-24 puzzles x 100 recorded samples: PRM-free policies and the oracle.
game24() {
    run langchain-adaptive bench import-game24 \
        --samples "$SHARED/data/game24/gpt-4_cot_samples_puzzles900-999.json" \
        --puzzles "$SHARED/data/game24/24.csv" --out "$OUT/game24-pools.jsonl"
    run langchain-adaptive bench replay "$OUT/game24-pools.jsonl" --replicates 200 \
        --cost samples --confidences 0.1,0.3,0.5,0.7,0.9,0.95,0.99 \
        --out "$OUT/game24-replay.json"
}

# The harness's own time from 10 to 1,000 replayed questions.
scaling() {
    run python examples/benchmarks/harness_scaling.py --pools "$OUT/game24-pools.jsonl" \
        --out "$OUT/harness_scaling.json"
}

STAGES=(calibration record replay live heldout game24 scaling)
if [[ $# -eq 0 ]]; then
    echo "usage: $0 STAGE... (stages: ${STAGES[*]}, or all)" >&2
    exit 2
fi
[[ "$1" == all ]] && set -- "${STAGES[@]}"
for stage in "$@"; do
    if [[ " ${STAGES[*]} " != *" $stage "* ]]; then
        echo "unknown stage '$stage' (stages: ${STAGES[*]}, or all)" >&2
        exit 2
    fi
done
for stage in "$@"; do
    "$stage"
done
