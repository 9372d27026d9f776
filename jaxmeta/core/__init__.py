"""The functional core: types, losses, inner-loop adaptation, the learner interface, the meta step."""
