"""Meta-learning: MAML (second order), first-order MAML and Reptile, with Finn et al.'s sine protocol.

"Rapid task adaptation" here means: after meta-training on many related tasks, a model
fits a *new* task from K examples with one (MAML) or a few (Reptile) plain SGD steps, far
better than a model pretrained on all tasks jointly and fine-tuned the same way.

- MAML (Finn et al. 2017): inner SGD on the support set, the outer loss on the query set
  is differentiated through the inner steps (`create_graph=True`, second order).
- FOMAML: the same, treating the inner gradients as constants (first order).
- Reptile (Nichol et al. 2018): k inner SGD steps, then an outer step along phi - theta (averaged
  over the batch of tasks), taken by Adam: theta - phi is the outer "gradient".
- Joint pretraining (the baseline): regress every task's points with one network.

The sine protocol: amplitude U[0.1, 5], phase U[0, pi], x U[-5, 5]; a 1-40-40-1 ReLU MLP;
K = 10 support points per task; evaluation on 600 held-out tasks, MSE on 100 query points
after SGD (lr 0.01) on the K points. Networks are plain dicts of tensors run by
`mlp_forward`, so the inner loop is readable and needs no functional library.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

Params = dict[str, torch.Tensor]
METHODS = ("maml", "fomaml", "reptile", "joint")


# -- the sine task family --------------------------------------------------------------------
@dataclass
class SineTasks:
    """Sine regression tasks y = A sin(x - phase)."""

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(amplitudes, phases) of n tasks: (n,), (n,)."""
        lo, hi = self.amplitude
        amp = lo + (hi - lo) * torch.rand(n, generator=gen)
        lo, hi = self.phase
        return amp, lo + (hi - lo) * torch.rand(n, generator=gen)

    def points(self, amp: torch.Tensor, phase: torch.Tensor, k: int,
               gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """k points of each task: x, y of shape (n, k, 1)."""
        lo, hi = self.x_range
        x = lo + (hi - lo) * torch.rand(len(amp), k, 1, generator=gen)  # (n, k, 1)
        return x, amp[:, None, None] * torch.sin(x - phase[:, None, None])  # (n, k, 1)


# -- the network as a dict of tensors ----------------------------------------------------------
def init_mlp(sizes: tuple[int, ...] = (1, 40, 40, 1), seed: int = 0) -> Params:
    """Weights w{i} (out, in) and biases b{i}, initialised like nn.Linear, requiring grad."""
    gen = torch.Generator().manual_seed(seed)
    params: Params = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        bound = 1.0 / math.sqrt(fan_in)
        params[f"w{i}"] = ((torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound).requires_grad_()
        params[f"b{i}"] = ((torch.rand(fan_out, generator=gen) * 2 - 1) * bound).requires_grad_()
    return params


def mlp_forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """ReLU MLP. Shared weights: x (..., in) -> (..., out). Per-task weights (w{i}: (n, out, in),
    b{i}: (n, out)): x (n, k, in) -> (n, k, out)."""
    layers = len(params) // 2
    for i in range(layers):
        w, b = params[f"w{i}"], params[f"b{i}"]
        per_task_weights = w.dim() == 3
        x = x @ w.transpose(1, 2) + b.unsqueeze(1) if per_task_weights else x @ w.T + b  # (n, k, out)
        if i < layers - 1:
            x = torch.relu(x)
    return x


def mse(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error (over everything)."""
    return ((mlp_forward(params, x) - y) ** 2).mean()


def task_mse(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over tasks of each task's mean squared error: x, y (n, k, 1) -> scalar.

    With per-task weights, its gradient with respect to task t's weights is the gradient of
    task t's own loss, so one backward adapts every task at once.
    """
    return ((mlp_forward(params, x) - y) ** 2).mean(dim=(1, 2)).sum()


def per_task(params: Params, n: int) -> Params:
    """Shared weights repeated for n tasks (differentiable back to the shared ones)."""
    return {name: p.unsqueeze(0).expand(n, *p.shape) for name, p in params.items()}


# -- inner and outer updates ---------------------------------------------------------------------
def adapt(params: Params, loss_fn: Callable[[Params], torch.Tensor], lr: float, steps: int,
          create_graph: bool = False) -> Params:
    """`steps` plain SGD steps on loss_fn from params; differentiable when create_graph."""
    fast = dict(params)
    for _ in range(steps):
        grads = torch.autograd.grad(loss_fn(fast), list(fast.values()), create_graph=create_graph)
        fast = {name: p - lr * g for (name, p), g in zip(fast.items(), grads, strict=True)}
    return fast


def maml_objective(params: Params, support: tuple[torch.Tensor, torch.Tensor],
                   query: tuple[torch.Tensor, torch.Tensor], lr: float, steps: int,
                   first_order: bool) -> torch.Tensor:
    """Mean query loss after adapting to each task's support set; backward gives the meta-gradient.

    support, query: (x, y) with shapes (n_tasks, k, 1); all tasks adapt at once (per-task
    weights). First order: the adapted weights are theta plus a constant, so the gradient is
    the query gradient at phi.
    """
    n = support[0].shape[0]
    start = per_task(params, n)
    fast = adapt(start, lambda p: task_mse(p, *support), lr, steps, create_graph=not first_order)
    if first_order:  # phi = theta + (phi - theta).detach(): d loss(phi) / d theta = grad at phi
        fast = {name: start[name] + (fast[name] - start[name]).detach() for name in params}
    return task_mse(fast, *query) / n


@dataclass
class MetaConfig:
    method: str = "maml"  # maml, fomaml, reptile or joint (the pretrained baseline)
    iterations: int = 2000  # outer steps
    meta_batch: int = 25  # tasks per outer step
    k: int = 10  # support (and query) points per task
    inner_lr: float = 0.01  # SGD step size of the inner loop (and of adaptation at test time)
    inner_steps: int = 1  # MAML/FOMAML inner steps while training
    meta_lr: float = 1e-3  # Adam step size of the outer loop (every method)
    reptile_steps: int = 10  # Reptile inner steps
    reptile_inner_lr: float = 0.01  # 0.02 diverged (NaN) after ~8000 meta-steps
    seed: int = 0


def meta_train(cfg: MetaConfig, tasks: SineTasks | None = None,
               progress: Callable[[int], None] | None = None) -> Params:
    """Train a 1-40-40-1 network by `cfg.method` on sine tasks; returns its parameters."""
    if cfg.method not in METHODS:
        from salesai.errors import SalesAIError

        raise SalesAIError(f"meta-learning method {cfg.method!r}: expected one of {', '.join(METHODS)}")
    tasks = tasks or SineTasks()
    gen = torch.Generator().manual_seed(cfg.seed)
    params = init_mlp(seed=cfg.seed)
    opt = torch.optim.Adam(list(params.values()), lr=cfg.meta_lr)
    for it in range(cfg.iterations):
        amp, phase = tasks.sample(cfg.meta_batch, gen)
        if cfg.method == "reptile":
            x, y = tasks.points(amp, phase, cfg.k, gen)  # (n, k, 1)
            fast = adapt(per_task(params, cfg.meta_batch), functools.partial(task_mse, x=x, y=y),
                         cfg.reptile_inner_lr, cfg.reptile_steps)
            with torch.no_grad():  # outer "gradient": theta - mean over tasks of phi_t
                for n, p in params.items():
                    p.grad = p - fast[n].mean(dim=0)
            opt.step()
        else:
            support = tasks.points(amp, phase, cfg.k, gen)
            opt.zero_grad()
            if cfg.method == "joint":
                loss = mse(params, *support)
            else:
                query = tasks.points(amp, phase, cfg.k, gen)
                loss = maml_objective(params, support, query, cfg.inner_lr, cfg.inner_steps,
                                      first_order=cfg.method == "fomaml")
            loss.backward()
            opt.step()
        if progress is not None:
            progress(it + 1)
    return {n: p.detach().requires_grad_() for n, p in params.items()}


def evaluate(params: Params, n_tasks: int = 600, k: int = 10, steps: tuple[int, ...] = (1, 10),
             lr: float = 0.01, seed: int = 12345, tasks: SineTasks | None = None,
             query_points: int = 100) -> dict[int, float]:
    """Mean query MSE over `n_tasks` held-out tasks after `s` SGD steps on K points, for each s."""
    tasks = tasks or SineTasks()
    gen = torch.Generator().manual_seed(seed)
    amp, phase = tasks.sample(n_tasks, gen)
    xs, ys = tasks.points(amp, phase, k, gen)
    xq, yq = tasks.points(amp, phase, query_points, gen)
    fast, done, result = per_task(params, n_tasks), 0, {}
    for s in sorted(steps):
        fast = adapt(fast, lambda p: task_mse(p, xs, ys), lr, s - done)
        done = s
        with torch.no_grad():
            result[s] = float(task_mse(fast, xq, yq)) / n_tasks
    return result


def sine_benchmark(iterations: int = 2000, seed: int = 0, n_tasks: int = 600,
                   methods: tuple[str, ...] = METHODS) -> list[dict[str, Any]]:
    """Train each method in the same run and evaluate it on the same held-out tasks."""
    rows = []
    for method in methods:
        params = meta_train(MetaConfig(method=method, iterations=iterations, seed=seed))
        result = evaluate(params, n_tasks=n_tasks, seed=seed + 12345)
        rows.append({"method": method, "iterations": iterations, "seed": seed,
                     "mse_1_step": result[1], "mse_10_steps": result[10]})
    return rows
