"""Meta-learning maths: MAML's meta-gradient (finite differences), FOMAML's, batched adaptation."""

from __future__ import annotations

import pytest
import torch

from salesai.errors import SalesAIError
from salesai_rl.meta import (
    MetaConfig,
    SineTasks,
    adapt,
    evaluate,
    init_mlp,
    maml_objective,
    meta_train,
    mse,
    per_task,
    task_mse,
)

torch.set_num_threads(1)


def _setup() -> tuple[dict, tuple, tuple]:
    params = {n: p.detach().double().requires_grad_() for n, p in init_mlp((1, 4, 1), seed=1).items()}
    gen = torch.Generator().manual_seed(0)
    tasks = SineTasks()
    amp, phase = tasks.sample(3, gen)
    support = tuple(t.double() for t in tasks.points(amp, phase, 5, gen))
    query = tuple(t.double() for t in tasks.points(amp, phase, 5, gen))
    return params, support, query


def test_maml_gradient_is_the_derivative_through_the_inner_step() -> None:
    params, support, query = _setup()
    loss = maml_objective(params, support, query, lr=0.05, steps=2, first_order=False)
    grads = torch.autograd.grad(loss, list(params.values()))
    h = 1e-6
    w = params["w0"]
    for idx in [(0, 0), (2, 0)]:  # central finite differences of the whole objective
        with torch.no_grad():
            w[idx] += h
        up = maml_objective(params, support, query, 0.05, 2, first_order=False).item()
        with torch.no_grad():
            w[idx] -= 2 * h
        down = maml_objective(params, support, query, 0.05, 2, first_order=False).item()
        with torch.no_grad():
            w[idx] += h
        assert grads[0][idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_fomaml_gradient_is_the_query_gradient_at_the_adapted_weights() -> None:
    params, support, query = _setup()
    loss = maml_objective(params, support, query, lr=0.05, steps=1, first_order=True)
    grads = torch.autograd.grad(loss, list(params.values()))
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for t in range(3):  # one task at a time, by hand: phi = theta - lr * grad, then grad at phi
        theta = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
        g = torch.autograd.grad(mse(theta, support[0][t], support[1][t]), list(theta.values()))
        pairs = zip(theta.items(), g, strict=True)
        phi = {n: (p - 0.05 * gi).detach().requires_grad_() for (n, p), gi in pairs}
        gq = torch.autograd.grad(mse(phi, query[0][t], query[1][t]), list(phi.values()))
        for n, gi in zip(phi, gq, strict=True):
            expected[n] += gi / 3
    for n, got in zip(params, grads, strict=True):
        torch.testing.assert_close(got, expected[n])


def test_batched_adaptation_equals_one_task_at_a_time() -> None:
    params, support, _ = _setup()
    fast = adapt(per_task(params, 3), lambda p: task_mse(p, *support), lr=0.05, steps=3)
    for t in range(3):
        single = adapt(params, lambda p, t=t: mse(p, support[0][t], support[1][t]), lr=0.05, steps=3)
        for n in params:
            torch.testing.assert_close(fast[n][t], single[n])


@pytest.mark.parametrize("method", ["maml", "fomaml", "reptile", "joint"])
def test_meta_train_runs_each_method(method: str) -> None:
    before = init_mlp(seed=0)
    params = meta_train(MetaConfig(method=method, iterations=3, meta_batch=4))
    assert {n: tuple(p.shape) for n, p in params.items()} == {n: tuple(p.shape) for n, p in before.items()}
    assert any(not torch.equal(params[n], before[n]) for n in params)  # it moved
    result = evaluate(params, n_tasks=8, steps=(1, 10))
    assert set(result) == {1, 10} and all(v > 0 for v in result.values())


def test_unknown_method() -> None:
    with pytest.raises(SalesAIError, match="meta-learning method 'mamal': expected one of maml, fomaml"):
        meta_train(MetaConfig(method="mamal", iterations=1))
