#!/usr/bin/env bash
# The three real-model pools in ../shared/data, from import to published results.
#
#   bash examples/benchmarks/real_pools.sh import            # the pool files, seconds
#   DRY_RUN=1 bash examples/benchmarks/real_pools.sh all     # print the commands only
#
# Pools land in ${OUT:-runs/real-pools}; SHARED points at the shared data folder.
#   game24-cot.jsonl   GPT-4 chain-of-thought Game of 24, 100 puzzles x 100 samples
#   gsm8k-qwen05b.jsonl  Qwen2.5-0.5B-Instruct on GSM8K, 200 x 16, scorer logprob
#   math500-qwen15b.jsonl  Qwen2.5-1.5B-Instruct on MATH500, 40 x 24 (three seeds
#                        pooled), scorer prm (Skywork PRM, mean over steps)
set -euo pipefail

SHARED="${SHARED:-../shared}"
OUT="${OUT:-runs/real-pools}"
DATA="$SHARED/data"

run() {
    if [[ -n "${DRY_RUN:-}" ]]; then
        printf '%q ' "$@"
        printf '\n'
    else
        printf '+ %s\n' "$*" >&2
        "$@"
    fi
}

# Each shared pool into a pool file, one command each (docs/guides/importing-samples.md).
stage_import() {
    run langchain-adaptive bench import --preset game24-tot \
        --questions "$DATA/game24/gpt-4_cot_samples_puzzles900-999.json" \
        --out "$OUT/game24-cot.jsonl"
    run langchain-adaptive bench import --preset gsm8k-qwen \
        --questions "$DATA/gsm8k-qwen05b/gsm8k_trajectories.jsonl" \
        --out "$OUT/gsm8k-qwen05b.jsonl"
    run langchain-adaptive bench import --preset crucible \
        --questions "$DATA/crucible/math500-bestofn-seed0.json" \
        "$DATA/crucible/math500-bestofn-seed1.json" \
        "$DATA/crucible/math500-bestofn-seed2.json" \
        --out "$OUT/math500-qwen15b.jsonl"
}

REPLICATES="${REPLICATES:-30}"

# Each pool with two-fold cross-fitting (--cross-fit): every calibrator (--fit) and
# stop rule (--fit-stop) is fitted on one half of the questions and replayed on the
# other, and both halves go in one report, paired on the same sample orders.
# Results (JSON, Markdown, PNG) land in $OUT/results; docs/results/real-pools.md
# publishes them.
replay_pool() {
    local pool="$1" name="$2"
    shift 2
    run langchain-adaptive bench replay "$OUT/$pool.jsonl" --cross-fit --split-seed 0 \
        --replicates "$REPLICATES" --no-batch "$@" --out "$OUT/results/$name.json"
}

stage_replay() {
    replay_pool gsm8k-qwen05b gsm8k \
        --fit logprob-iso=logprob:isotonic --scorer logprob-iso --selection weighted_vote \
        --sample-rules logprob-iso --filtered-vote logprob-iso --fit-stop logprob=logprob-iso
    replay_pool math500-qwen15b math500 \
        --fit prm-iso=prm:isotonic --scorer prm-iso --selection weighted_vote \
        --sample-rules prm-iso --fit-stop prm=prm-iso
    # no scorer: vote-only rules against coverage with the exact verifier
    replay_pool game24-cot game24 --estimators oracle
}

STAGES=(import replay)
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
    "stage_$stage"
done
