"""Scenario 4: cold start. In a fresh interpreter: import the handler module and build its runtime
(clients, store), against a baseline that imports the same third-party modules and creates the same
boto3 clients; asserts neither loads pandas or numpy.

The baseline's imports are the third-party imports found (by AST) in every module of ours that the
child actually loaded, including imports inside functions that ran (boto3 in open_store), so the two
sides differ only by our own code. Interpreter start-up is excluded from both (same for both).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from bench.harness import ROOT, TOKEN, Context, Metric, check, emit, image_site, median, run_child

TARGET = 1.15
HEAVY = ("pandas", "numpy")
FUNCTIONS = {
    # label: (handler module, clients the runtime creates, as baseline code)
    "scraper": (
        "lambda_function",
        "boto3.client('s3')\n"
        "httpx.Client(base_url='http://127.0.0.1:9', limits=httpx.Limits(max_connections=8))",
    ),
    "orchestrator": (
        "backfill_orchestrator",
        "boto3.client('s3')\n"
        "from botocore.config import Config\n"
        "boto3.client('lambda', config=Config(read_timeout=905, connect_timeout=10, "
        "retries={'mode': 'standard', 'max_attempts': 3}))",
    ),
}
FOLDERS = {"scraper": "tiingo_price_scraper", "orchestrator": "tiingo_backfill_orchestrator"}
ENV = {
    "DATA_BUCKET": "bench-cold",
    "TIINGO_API_TOKEN": TOKEN,
    "TIINGO_BASE_URL": "http://127.0.0.1:9",
    "SCRAPER_FUNCTION_NAME": "tiingo-price-scraper",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
}


def _third_party_imports(files: list[str]) -> list[str]:
    """Non-stdlib, non-project modules imported anywhere in the given source files."""
    found: dict[str, None] = {}
    own = ("stockpipe", "lambda_function", "backfill_orchestrator")
    for file in files:
        tree = ast.parse(Path(file).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own and top != "__future__":
                    found[name] = None
    return list(found)


def child(args: dict) -> None:
    """Runs in the fresh interpreter (``python -m bench.cold_import <json>``)."""
    import time

    started = time.perf_counter()
    if args["side"] == "ours":
        import importlib

        module = importlib.import_module(args["module"])
        module.runtime()
    else:
        exec(args["code"], {})
    seconds = time.perf_counter() - started
    ours_files = [
        getattr(m, "__file__", None)
        for name, m in list(sys.modules.items())
        if name.startswith("stockpipe") or name in ("lambda_function", "backfill_orchestrator")
    ]
    emit(
        {
            "seconds": seconds,
            "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY),
            "modules": len(sys.modules),
            "files": [f for f in ours_files if f],
        }
    )


def measure(label: str, repeats: int, ctx: Context | None = None) -> dict:
    """Both sides run with only the function's requirements.txt installed (``image_site``), as in
    the image."""
    module, clients = FUNCTIONS[label]
    env = {**ENV, **(ctx.moto.env() if ctx else {})}
    site = image_site(ROOT / "lambdas" / FOLDERS[label] / "requirements.txt")
    probe = run_child("bench.cold_import", {"side": "ours", "module": module}, env, site=site)  # warms .pyc
    imports = _third_party_imports(probe["files"])
    code = "".join(f"import {name}\n" for name in imports) + clients + "\n"
    run_child("bench.cold_import", {"side": "baseline", "code": code}, env, site=site)  # warm .pyc
    ours, base, heavy = [], [], set(probe["heavy"])
    for _ in range(repeats):  # interleaved: drift on a shared machine hits both sides alike
        o = run_child("bench.cold_import", {"side": "ours", "module": module}, env, site=site)
        b = run_child("bench.cold_import", {"side": "baseline", "code": code}, env, site=site)
        ours.append(o["seconds"])
        base.append(b["seconds"])
        heavy |= set(o["heavy"]) | set(b["heavy"])
    return {
        "ours": ours,
        "baseline": base,
        "imports": imports,
        "heavy": sorted(heavy),
        "modules": probe["modules"],
        "own_modules": len(probe["files"]),
    }


def run(ctx: Context) -> list[Metric]:
    repeats = ctx.pick(2, 15, tiny=1)
    metrics = []
    for label, (module, _) in FUNCTIONS.items():
        if not (ROOT / "lambdas" / FOLDERS[label] / f"{module}.py").exists():
            metrics.append(
                Metric(f"cold_import_{label}", None, "s", None, f"ratio <= {TARGET}", note="missing")
            )
            continue
        result = measure(label, repeats, ctx)
        ours_s, base_s = median(result["ours"]), median(result["baseline"])
        ratio = ours_s / base_s
        ctx.details[f"cold_import_{label}"] = result
        ctx.log(
            f"cold {label}: ours {ours_s * 1000:.0f} ms, baseline {base_s * 1000:.0f} ms, "
            f"heavy {result['heavy']}"
        )
        assert not result["heavy"], f"{label} cold start imported {result['heavy']}"
        metrics.append(
            Metric(
                f"cold_import_{label}",
                ours_s,
                "s",
                base_s,
                f"ratio <= {TARGET}; pandas/numpy not imported",
                ratio=ratio,
                met=check(ratio, "<=", TARGET) and not result["heavy"],
                note=f"median of {repeats} fresh interpreters with only requirements.txt installed; "
                f"baseline imports {', '.join(result['imports'])} "
                f"and creates the same clients; {result['own_modules']} of our modules, "
                f"{result['modules']} modules in all; pandas/numpy loaded: {result['heavy'] or 'none'}",
            )
        )
    return metrics


if __name__ == "__main__":
    import json

    child(json.loads(sys.argv[1]))
