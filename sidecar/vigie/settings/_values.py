"""The values of settings: sizes, booleans, addresses, lists of numbers, each parsed and
checked, and a field's value converted to its kind with its range (``min``/``max``, finite) and
choices checked. ``vigie.settings`` builds the one ``Settings`` object from them."""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from vigie.errors import ConfigError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS: Final = {
    "": 1,
    "B": 1,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "KI": 1024,
    "MI": 1024**2,
    "GI": 1024**3,
    "TI": 1024**4,
}


def parse_size(value: Any) -> int:
    """``1073741824``, ``"512MiB"``, ``"2G"`` -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512MiB")
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"expected a size such as 512MiB, got {value!r}")
    unit = (m.group(2) or "").upper().rstrip("B")
    return int(float(m.group(1)) * _UNITS[unit])


def parse_bool(value: Any) -> bool:
    """``true``/``false`` (TOML), or ``1``/``0``/``true``/``false``/``yes``/``no`` (text)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def check_address(value: str) -> None:
    """``host:port`` with a port from 0 to 65535 (0: any free port), or ``unix:/path``."""
    if value.startswith("unix:"):
        if len(value) == len("unix:"):
            raise ValueError("unix: needs a path")
        return
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port (port 0-65535) or unix:/path, got {value!r}")


def parse_floats(value: Any) -> tuple[float, ...]:
    """``"0.1, 0.5, 1"`` or ``[0.1, 0.5, 1]`` -> increasing positive numbers."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"expected increasing numbers such as 0.1,0.5,1, got {value!r}")
    try:
        out = tuple(float(x) for x in items if not isinstance(x, bool))
    except (TypeError, ValueError):
        raise ValueError(f"expected increasing numbers such as 0.1,0.5,1, got {value!r}") from None
    if len(out) != len(items) or any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"expected increasing numbers such as 0.1,0.5,1, got {value!r}")
    if out[0] <= 0 or not all(x < float("inf") for x in out):
        raise ValueError(f"expected positive finite numbers, got {value!r}")
    return out


def loopback(address: str) -> bool:
    if address.startswith("unix:"):
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def convert(name: str, value: Any, meta: Mapping[str, Any], where: str) -> Any:
    kind = meta["kind"]
    try:
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError(f"expected a string, got {type(value).__name__}")
            out: Any = value
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(f"expected an integer, got {value!r}")
            out = int(value)
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"expected a number, got {value!r}")
            out = float(value)
        elif kind == "bool":
            out = parse_bool(value)
        elif kind == "size":
            out = parse_size(value)
        elif kind == "floats":
            out = parse_floats(value)
        else:  # pragma: no cover - layout error
            raise AssertionError(kind)
        if "check" in meta:
            meta["check"](out)
    except ValueError as exc:
        msg = str(exc)
        if "invalid literal" in msg or "could not convert" in msg:
            msg = f"expected {'an integer' if kind == 'int' else 'a number'}, got {value!r}"
        raise ConfigError(f"{where}{name}: {msg}") from None
    if kind == "float" and not math.isfinite(out):
        raise ConfigError(f"{where}{name}: must be a finite number, got {value!r}")
    if "min" in meta and out < meta["min"]:
        raise ConfigError(f"{where}{name}: must be at least {meta['min']}, got {value!r}")
    if "max" in meta and out > meta["max"]:
        raise ConfigError(f"{where}{name}: must be at most {meta['max']}, got {value!r}")
    if "choices" in meta and out not in meta["choices"]:
        raise ConfigError(
            f"{where}{name}: must be one of {', '.join(meta['choices'])}, got {value!r}"
        )
    return out


def unknown_setting(where: str, key: str, known: list[str]) -> ConfigError:
    hint = difflib.get_close_matches(key, known, n=1)
    extra = f" (did you mean '{hint[0]}'?)" if hint else ""
    return ConfigError(f"{where}unknown setting '{key}'{extra}")
