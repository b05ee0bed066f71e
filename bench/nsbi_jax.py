"""The synthetic NSBI likelihood of benches/nsbi.rs (src/model/nsbi/synth_big.rs)
written in JAX and minimised with scipy, for the side-by-side in
docs/benchmarks.md (## NSBI).

N events, 3 processes (mu - sqrt(mu), sqrt(mu), 1 - sqrt(mu)), K nuisance
parameters, each with a code-4 yield variation and a per-event code-4 shape
variation of one process (k % 3), Gaussian constraints; weights = the Asimov
weights at mu = 1 (as the Rust benchmark). Same functions as the Rust
generator, numpy random numbers (the numbers differ, the work does not).

    python -m venv .venv-bench-nsbi && .venv-bench-nsbi/bin/pip install "jax[cpu]" scipy numpy
    .venv-bench-nsbi/bin/python bench/nsbi_jax.py [N] [K] [REPEATS]

Prints the CPU and wall time of value+gradient, of the Hessian (jax.hessian),
and of a full fit (scipy L-BFGS-B with the jitted value and gradient; and
scipy trust-constr with the jitted Hessian too).
"""

import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
import scipy.optimize

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
K = int(sys.argv[2]) if len(sys.argv) > 2 else 20
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 10

# pyhf code 4: a = M^-1 b, b = [k+ - 1, k- - 1, k+ ln k+, -k- ln k-, k+ ln^2 k+, k- ln^2 k-]
A = np.array(
    [
        [1, 1, 1, 1, 1, 1],
        [-1, 1, -1, 1, -1, 1],
        [1, 2, 3, 4, 5, 6],
        [1, -2, 3, -4, 5, -6],
        [0, 2, 6, 12, 20, 30],
        [0, 2, -6, 12, -20, 30],
    ],
    dtype=float,
)
MINV = jnp.asarray(np.linalg.inv(A))


def code4(alpha, lp, lm):
    """code 4 with ln k+ = lp, ln k- = lm (arrays), at scalar alpha."""
    kp, km = jnp.exp(lp), jnp.exp(lm)
    b = jnp.stack([kp - 1, km - 1, kp * lp, -km * lm, kp * lp * lp, km * lm * lm])
    pw = jnp.stack([alpha ** (j + 1) for j in range(6)])
    beta = MINV.T @ pw  # g = 1 + b . beta
    poly = 1.0 + jnp.tensordot(beta, b, 1)
    return jnp.where(alpha >= 1, jnp.exp(alpha * lp), jnp.where(alpha <= -1, jnp.exp(-alpha * lm), poly))


def make():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, 2))
    u = np.array([[0.8, 0.0], [0.3, 0.2], [-0.4, 0.0]])
    r = np.exp(x @ u.T - 0.5 * (u * u).sum(1))  # (N, 3)
    lup = np.empty((K, N))
    ldn = np.empty((K, N))
    # as src/model/nsbi/synth_big.rs: nuisance k tilts its own N(0, 1)
    # observable z_k symmetrically, ln k+- = +-a z - a^2 / 2
    z = rng.standard_normal((K, N))
    for k in range(K):
        c = k % 3
        a = (0.02 + 0.004 * (k % 7)) * (1.0 + 0.25 * c)
        lup[k] = a * z[k] - 0.5 * a * a
        ldn[k] = -a * z[k] - 0.5 * a * a
    scale = N / 1000.0
    nus = np.array([60.0, 400.0, 540.0]) * scale
    dk = np.array([[0.01 + 0.002 * ((k + c) % 5) for c in range(3)] for k in range(K)])  # (K, 3)
    return jnp.asarray(r.T.copy()), jnp.asarray(lup), jnp.asarray(ldn), jnp.asarray(nus), jnp.asarray(dk)


R, LUP, LDN, NUS, DK = make()
PROC = np.array([k % 3 for k in range(K)])


def rates(theta):
    mu, al = theta[0], theta[1:]
    s = jnp.sqrt(mu)
    f = jnp.stack([mu - s, s, 1 - s])
    yl = jnp.stack([code4(al[k], jnp.log1p(DK[k]), jnp.log1p(-0.9 * DK[k])) for k in range(K)])  # (K, 3)
    return NUS * f * jnp.prod(yl, axis=0)


def lam(theta):
    a = rates(theta)
    al = theta[1:]
    rows = [R[c] for c in range(3)]
    for k in range(K):
        c = PROC[k]
        rows[c] = rows[c] * code4(al[k], LUP[k], LDN[k])
    return a[0] * rows[0] + a[1] * rows[1] + a[2] * rows[2], a


THETA0 = jnp.concatenate([jnp.ones(1), jnp.zeros(K)])
W = lam(THETA0)[0] / N


def twice_nll(theta):
    l, a = lam(theta)
    return 2 * a.sum() - 2 * jnp.sum(W * jnp.log(l)) + jnp.sum(theta[1:] ** 2)


vg = jax.jit(jax.value_and_grad(twice_nll))
hess = jax.jit(jax.hessian(twice_nll))


def timed(fn, reps):
    fn()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(reps):
        fn()
    return 1e3 * (time.process_time() - c0) / reps, 1e3 * (time.perf_counter() - w0) / reps


x = np.array(THETA0)
x[1:] = [0.3 * ((i % 5) - 2.0) / 2.0 for i in range(1, K + 1)]
x = jnp.asarray(x)
print(f"N={N} K={K} load={os.getloadavg()[0]:.2f} jax {jax.__version__} devices {jax.devices()}")
c, w = timed(lambda: jax.block_until_ready(vg(x)), REPS)
print(f"value+grad: {c:.1f} ms CPU, {w:.1f} ms wall")
c, w = timed(lambda: jax.block_until_ready(hess(x)), max(1, REPS // 2))
print(f"hessian:    {c:.1f} ms CPU, {w:.1f} ms wall")

start = np.array(THETA0)  # the nominal point, as FitSpec::from_model in examples/nsbi_timing.rs
bounds = [(0.0, 10.0)] + [(-5.0, 5.0)] * K


def f_np(t):
    v, g = vg(jnp.asarray(t))
    return float(v), np.asarray(g)


for method in ["L-BFGS-B", "trust-constr"]:
    c0, w0 = time.process_time(), time.perf_counter()
    if method == "L-BFGS-B":
        r = scipy.optimize.minimize(f_np, start, jac=True, method=method, bounds=bounds, options={"gtol": 1e-9})
    else:
        r = scipy.optimize.minimize(
            f_np, start, jac=True, hess=lambda t: np.asarray(hess(jnp.asarray(t))), method=method, bounds=bounds
        )
    c, w = 1e3 * (time.process_time() - c0), 1e3 * (time.perf_counter() - w0)
    print(f"fit {method}: mu={r.x[0]:.6f} nfev={r.nfev} {c:.0f} ms CPU, {w:.0f} ms wall, success={r.success}")
