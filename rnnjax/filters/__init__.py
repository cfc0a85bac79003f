"""Optimal state estimation, the references the tracking studies measure cells against.

`gaussian`: state-space models with Gaussian noise (`LinearGaussian`,
`NonlinearGaussian`) and their filters: Kalman (and its steady state), extended and
unscented Kalman, bootstrap particle. `discrete`: a discrete hidden state observed
through the actions that also move it on (`DiscreteStateModel`, an input-output HMM)
and its exact forward filter. `simulate` samples either kind of model.
"""

from __future__ import annotations

from rnnjax.filters.discrete import (
    DiscreteStateModel,
    discrete_filter,
    discrete_sizes,
    simulate_discrete,
)
from rnnjax.filters.gaussian import (
    LinearGaussian,
    NonlinearGaussian,
    PendulumStep,
    SteadyState,
    cholesky,
    constant_velocity,
    extended_kalman_filter,
    horizontal_position,
    innovation_covariance,
    kalman_filter,
    kalman_predict,
    kalman_update,
    particle_filter,
    pendulum,
    simulate_gaussian,
    sizes,
    solve_spd,
    steady_state,
    unscented_kalman_filter,
)


def simulate(model, key, steps: int, batch: int):
    """`batch` independent sequences of `steps` steps of the model.

    A `LinearGaussian` or `NonlinearGaussian` gives (states xs [batch, steps, n],
    observations zs [batch, steps, m]); a `DiscreteStateModel` gives (hidden states
    [batch, steps], actions [batch, steps]), both int32.
    """
    if isinstance(model, DiscreteStateModel):
        return simulate_discrete(model, key, steps, batch)
    return simulate_gaussian(model, key, steps, batch)


__all__ = ["DiscreteStateModel", "LinearGaussian", "NonlinearGaussian", "PendulumStep",
           "SteadyState", "cholesky", "constant_velocity", "discrete_filter", "discrete_sizes",
           "extended_kalman_filter", "horizontal_position", "innovation_covariance",
           "kalman_filter", "kalman_predict", "kalman_update", "particle_filter",
           "pendulum", "simulate", "simulate_discrete", "simulate_gaussian", "sizes",
           "solve_spd", "steady_state", "unscented_kalman_filter"]
