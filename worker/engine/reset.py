"""Membrane reset after a spike."""

import torch

from worker.registry import RESET_METHODS


def reset(
    z: torch.Tensor,
    v: torch.Tensor,
    v_th: torch.Tensor | float,
    v_reset: torch.Tensor | float,
    method: str = "value",
) -> torch.Tensor:
    """Reset ``v`` where ``z`` spiked.

    ``"value"`` sets v to ``v_reset`` (Norse's form ``(1 - z) * v + z * v_reset``, kept verbatim so
    results match Norse bit for bit). ``"subtract"`` removes the distance from reset to threshold,
    ``v - z * (v_th - v_reset)``: the overshoot above threshold is kept. With ``v_reset = 0`` this
    is exactly the subtractive reset of Norse and snnTorch.
    """
    if method == "value":
        return (1 - z) * v + z * v_reset
    if method == "subtract":
        return v - z * (v_th - v_reset)
    raise ValueError(f"unknown reset method {method!r}; expected one of {', '.join(RESET_METHODS)}")
