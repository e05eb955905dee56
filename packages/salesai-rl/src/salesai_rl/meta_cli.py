"""`salesai rl meta`: the sine meta-learning protocol (Finn et al. 2017) from the command line.

Trains each chosen method (MAML, first-order MAML, Reptile, and the joint-pretraining
baseline) in the same run, then adapts every one of them to the same held-out sine tasks
with plain SGD on K points and prints the query MSE after 1 and 10 steps, and each method's
MSE as a fraction of the joint baseline's (what "rapid task adaptation" means here; see
`salesai_rl.meta`). A table on stdout, or JSON with `--json`; progress on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add `meta` to the `salesai rl` group."""
    app.command("meta")(meta)


def run_meta(methods: list[str], iterations: int, tasks: int, seed: int,
             log: Any = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Train and evaluate `methods` on the same held-out tasks; rows plus ratios to `joint`."""
    from salesai.errors import SalesAIError
    from salesai_rl.meta import METHODS, MetaConfig, evaluate, meta_train

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SalesAIError(f"--method {unknown[0]!r}: expected one of {', '.join(METHODS)}")
    if iterations < 1:
        raise SalesAIError(f"--iterations {iterations}: expected at least 1")
    if tasks < 1:
        raise SalesAIError(f"--tasks {tasks}: expected at least 1")
    rows: list[dict[str, Any]] = []
    for method in dict.fromkeys(methods):  # each once, in the order given
        start = time.perf_counter()
        log(f"meta-training {method}: {iterations} meta-steps")
        params = meta_train(MetaConfig(method=method, iterations=iterations, seed=seed))
        mse = evaluate(params, n_tasks=tasks, seed=seed + 12345)
        rows.append({"method": method, "mse_1_step": mse[1], "mse_10_steps": mse[10],
                     "seconds": round(time.perf_counter() - start, 1)})
    joint = next((r for r in rows if r["method"] == "joint"), None)
    for row in rows:
        if joint is not None and row is not joint:
            row["vs_joint_1_step"] = row["mse_1_step"] / joint["mse_1_step"]
            row["vs_joint_10_steps"] = row["mse_10_steps"] / joint["mse_10_steps"]
    return {"protocol": "sine", "k": 10, "inner_lr": 0.01, "held_out_tasks": tasks,
            "iterations": iterations, "seed": seed, "results": rows}


def meta(
    method: Optional[list[str]] = typer.Option(
        None, "--method", "-m", help="maml, fomaml, reptile or joint (repeatable; default: all four)."),
    iterations: int = typer.Option(2000, "--iterations", help="Meta-training steps per method."),
    tasks: int = typer.Option(600, "--tasks", help="Held-out tasks to evaluate on."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and the training tasks."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Meta-learning on sine regression: MSE after 1 and 10 SGD steps on K=10 points of new tasks."""
    import torch

    from salesai_rl.meta import METHODS

    torch.set_num_threads(max(1, threads))
    result = run_meta(list(method or METHODS), iterations, tasks, seed)
    if json_output:
        typer.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    title = f"sine, K=10, SGD lr 0.01, {tasks} held-out tasks, {iterations} meta-steps"
    table = Table("method", "MSE 1 step", "MSE 10 steps", "/ joint 1", "/ joint 10", "s", title=title)
    for row in result["results"]:
        ratios = [f"{row[k]:.3f}x" if k in row else "-" for k in ("vs_joint_1_step", "vs_joint_10_steps")]
        table.add_row(row["method"], f"{row['mse_1_step']:.3f}", f"{row['mse_10_steps']:.3f}", *ratios,
                      f"{row['seconds']:.1f}")
    Console().print(table)
