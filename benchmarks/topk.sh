#!/usr/bin/env bash
# Issue 16's measurements: the top 20 of the metric by method='subspace' (cold and warm-started) against the
# exact 'jacobian' metric, and Gauss–Newton against double-backprop Hessian-vector products, on 2 CPU threads.
# Run on an idle machine from anywhere: `bash benchmarks/topk.sh`. It writes benchmarks/topk-*.json and prints
# the tables; paste them into benchmarks/README.md ("Top of the spectrum and batching (issue 16)").
#
# Budget on an idle 2-core machine (estimated from the issue's per-pass costs, not measured): faces64 about
# 1-2 min, faces256 a few minutes, biggan256 about 11 min (the exact metric on 32 of 256 directions, then
# extrapolated; the solver's runs cannot be cut, so one cold solve, one warm-start preparation on 1 other code
# and one warm solve; 8 vectors per Hessian-vector-product row).
# TOPK_STANDIN=1 also runs the cheaper stand-in biggan-deep-128 (solver rows only: cold against warm columns).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
run() { "$PYTHON" benchmarks/metric.py --device cpu --threads 2 "$@"; }

run --cases faces64 --methods jacobian,subspace,hvp --batch 16 --repeats 3 --tol 1e-3 --relative --json benchmarks/topk-faces64.json
run --cases faces256 --methods jacobian,subspace,hvp --batch 4 --tol 1e-3 --relative --json benchmarks/topk-faces256.json
run --cases biggan256 --methods jacobian,subspace,hvp --directions 32 --chunk-size 16 --batch 0 --warm-codes 1 --tol 1e-3 --relative \
    --hvp-vectors 8 --json benchmarks/topk-biggan256.json
if [[ "${TOPK_STANDIN:-0}" == 1 ]]; then
  run --cases biggan128 --methods subspace --directions 16 --chunk-size 16 --batch 0 --warm-codes 2 --tol 1e-3 --relative \
      --json benchmarks/topk-biggan128.json
fi
