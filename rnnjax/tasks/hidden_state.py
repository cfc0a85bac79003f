"""Hidden-state models to track (`filters.DiscreteStateModel`): the pet of the course
material, whose mood is never seen but shows in what it does, and a near-deterministic
cycle seen only through a rare landmark, where the filter needs long memory.

The pet's tables are written from the material's rules. Its state-transition equation
(Full -> Sleepy, Full -> Relieving, Sleepy -> Relieving, Sleepy -> Hungry, ...) is the
drift `PET_DRIFT`; its state-prediction equation (Hungry x Go to kitchen -> Full,
Sleepy x Lie down on pillow -> Relieving, Full x Being playful -> Hungry, ...) is
`PET_RULES`, each rule taken with probability `PET_RULE_PROBABILITY` and the drift
otherwise. Where the material says "etc." the tables are completed here; `PET_COMPLETED`
names those entries, and the study's report prints every table.
"""

from __future__ import annotations

import numpy as np

from rnnjax.filters import DiscreteStateModel

PET_STATES = ("hungry", "full", "sleepy", "relieving")
PET_ACTIONS = ("go to kitchen", "lie down on pillow", "go to potty", "be playful")

#: p(action | state): what the pet does in each state (rows: PET_STATES, columns:
#: PET_ACTIONS)
PET_EMISSION = np.array([
    [0.70, 0.10, 0.10, 0.10],     # hungry: mostly to the kitchen
    [0.05, 0.30, 0.15, 0.50],     # full: playful, or resting
    [0.05, 0.75, 0.10, 0.10],     # sleepy: on the pillow
    [0.05, 0.10, 0.75, 0.10],     # relieving: to the potty
])

#: p(next state | state) where no rule of PET_RULES applies (the state-transition
#: equation): Full -> Sleepy or Relieving, Sleepy -> Relieving or Hungry (the
#: material's); Hungry stays hungry until fed, Relieving -> Hungry (completed)
PET_DRIFT = np.array([
    [0.80, 0.00, 0.20, 0.00],     # hungry
    [0.00, 0.20, 0.40, 0.40],     # full
    [0.35, 0.00, 0.30, 0.35],     # sleepy
    [0.60, 0.00, 0.20, 0.20],     # relieving
])

#: (state, action) -> next state (the state-prediction equation); the first three are
#: the material's, the rest completed here
PET_RULES = {
    ("hungry", "go to kitchen"): "full",
    ("sleepy", "lie down on pillow"): "relieving",
    ("full", "be playful"): "hungry",
    ("relieving", "go to potty"): "hungry",
    ("full", "lie down on pillow"): "sleepy",
    ("hungry", "lie down on pillow"): "sleepy",
}
PET_COMPLETED = ("the drift of hungry and relieving",
                 "relieving x go to potty -> hungry", "full x lie down on pillow -> sleepy",
                 "hungry x lie down on pillow -> sleepy", "every emission probability")
PET_RULE_PROBABILITY = 0.9


def blurred(emission, noise: float):
    """The emission with each action replaced, with probability `noise`, by one drawn
    uniformly: (1 - noise) E + noise / A. At 0 the actions are as informative as the
    model makes them; at 1 they say nothing of the state (though they still move it)."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must lie in [0, 1], got {noise}")
    emission = np.asarray(emission, np.float64)
    return (1.0 - noise) * emission + noise / emission.shape[1]


def pet_model(noise: float = 0.0, dtype=np.float32) -> DiscreteStateModel:
    """The pet's input-output HMM: 4 moods, 4 actions, transitions that depend on the
    action (PET_RULES over PET_DRIFT); the first mood uniform; actions blurred by
    `noise` (see `blurred`)."""
    states = {name: i for i, name in enumerate(PET_STATES)}
    actions = {name: i for i, name in enumerate(PET_ACTIONS)}
    transition = np.broadcast_to(PET_DRIFT, (len(actions),) + PET_DRIFT.shape).copy()
    for (state, action), following in PET_RULES.items():
        s, a = states[state], actions[action]
        transition[a, s] = (PET_RULE_PROBABILITY * np.eye(len(states))[states[following]]
                            + (1 - PET_RULE_PROBABILITY) * PET_DRIFT[s])
    return DiscreteStateModel(np.full(len(states), 1 / len(states), dtype),
                              blurred(PET_EMISSION, noise).astype(dtype),
                              transition.astype(dtype))


def cycle_model(states: int = 12, slip: float = 0.02, landmark: float = 0.8,
                false_alarm: float = 0.05, noise: float = 0.0,
                dtype=np.float32) -> DiscreteStateModel:
    """A state that steps round a cycle of `states` phases (0 -> 1 -> ... -> 0), staying
    put with probability `slip`, seen through two actions: a landmark, given with
    probability `landmark` in phase 0 and `false_alarm` elsewhere, or nothing. The
    phase is known only by counting steps since the last landmark, across missed
    ones: the filter's memory reaches back several cycles. Transitions do not depend
    on the action (an ordinary HMM); the first phase is uniform; `noise` blurs the
    actions as in `blurred`."""
    if states < 2:
        raise ValueError(f"states must be at least 2, got {states}")
    for name, p in (("slip", slip), ("landmark", landmark), ("false_alarm", false_alarm)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {p}")
    step = (1 - slip) * np.roll(np.eye(states), 1, axis=1) + slip * np.eye(states)
    seen = np.full(states, false_alarm)
    seen[0] = landmark
    emission = blurred(np.stack([1 - seen, seen], axis=1), noise)
    return DiscreteStateModel(np.full(states, 1 / states, dtype), emission.astype(dtype),
                              np.stack([step, step]).astype(dtype))


def marginal_log_probs(model: DiscreteStateModel, steps: int) -> np.ndarray:
    """log p(s_t) [steps, S], t = 1 .. steps, with the actions unseen: the best guess of
    anyone who knows the model but ignores what the pet does (float64)."""
    initial, emission, transition = (np.asarray(m, np.float64) for m in model)
    # averaged over the action the state emits: p(s' | s) = sum_a p(a | s) p(s' | s, a)
    chain = np.einsum("sa,ast->st", emission, transition)
    out, p = [], initial
    for _ in range(steps):
        out.append(p)
        p = p @ chain
    with np.errstate(divide="ignore"):
        return np.log(np.stack(out))
