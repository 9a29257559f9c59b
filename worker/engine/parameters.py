"""Parameter NamedTuples that refuse time constants the dynamics cannot have."""

import math
from typing import Any

import torch


def _positive(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return math.isfinite(value) and value > 0
    values = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
    if values.device.type != "cpu":
        return True  # not checked where a check would wait for the device
    return bool(torch.isfinite(values).all()) and not bool((values <= 0).any())


def _check(parameters: Any) -> None:
    for name, value in zip(parameters._fields, parameters, strict=True):
        if name.startswith("tau_") and name.endswith("_inv") and value is not None and not _positive(value):
            raise ValueError(f"{type(parameters).__name__}.{name} must be positive and finite (an inverse time constant, 1/s)")


def positive_time_constants(cls: type) -> type:
    """Class decorator for a parameter NamedTuple: building one (directly, with ``_make`` or with
    ``_replace``) whose ``tau_*_inv`` fields are not all positive and finite raises ValueError,
    as the request format does."""
    plain_new, plain_make = cls.__new__, cls._make  # type: ignore[attr-defined]

    def __new__(klass: type, *args: Any, **kwargs: Any) -> Any:
        parameters = plain_new(klass, *args, **kwargs)
        _check(parameters)
        return parameters

    def _make(klass: type, iterable: Any) -> Any:
        parameters = plain_make.__func__(klass, iterable)
        _check(parameters)
        return parameters

    cls.__new__ = __new__  # type: ignore[assignment]
    cls._make = classmethod(_make)  # type: ignore[attr-defined]
    return cls


def rebuilt(parameter_type: type, fields: dict[str, Any]) -> Any:
    """``parameter_type(**fields)`` without the check, for values taken from parameters that
    passed it (moved to another device or dtype, read back from a module's buffers)."""
    return tuple.__new__(parameter_type, [fields[name] for name in parameter_type._fields])  # type: ignore[attr-defined]
