"""Tenants: an API is tenant x name x version.

WSO2 names every API's tenant (analytics ``apiCreatorTenantDomain``, the handler's ``tenant``
column, a stream's ``Hello.tenant``); the super tenant is ``carbon.super``, and an API whose
tenant nobody said is the super tenant's (a single-tenant platform, an older gateway, a
hand-written inventory).

The state and the rollups key an API by the global id of its *keyed name*: the API name itself
for the super tenant (so a single-tenant platform's keys, snapshots and stores are unchanged),
``tenant + U+001F + name`` for any other tenant. No WSO2 name holds U+001F: the stream decoder
refuses a dictionary string with it and the replay parsers replace it, so a keyed name cannot
be forged from a name. ``split`` gives the tenant and the name back for display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from vigie.wire.columns import Interner

SUPER_TENANT: Final = "carbon.super"
KEY_SEPARATOR: Final = "\x1f"


def canonical(tenant: str) -> str:
    """The tenant domain as vigie keys it: "" for the super tenant (or none said). WSO2
    tenant domains are case-insensitive (it lowercases them)."""
    t = tenant.strip().lower()
    return "" if t == SUPER_TENANT else t


def display(tenant: str) -> str:
    """The tenant domain as shown: the super tenant by its name."""
    return canonical(tenant) or SUPER_TENANT


def keyed_name(tenant: str, name: str) -> str:
    """The string an API is keyed by (see the module's docstring); a name already keyed is
    kept (no source gives a name with the separator)."""
    t = canonical(tenant)
    return f"{t}{KEY_SEPARATOR}{name}" if t and KEY_SEPARATOR not in name else name


def split(keyed: str) -> tuple[str, str]:
    """``(tenant, name)`` of a keyed name, the tenant as displayed."""
    t, sep, name = keyed.partition(KEY_SEPARATOR)
    return (t, name) if sep else (SUPER_TENANT, keyed)


def clean(name: str) -> str:
    """A name from a source that is not the stream decoder, with U+001F replaced."""
    return name.replace(KEY_SEPARATOR, "\ufffd") if KEY_SEPARATOR in name else name


def matches(wanted: str, tenant: str) -> bool:
    """Whether a ``--tenant`` filter (empty: any) accepts a tenant, both as given or shown."""
    return not wanted or canonical(wanted) == canonical(tenant)


def keyed_names(
    interner: Interner, tenant: npt.NDArray[np.int32], name: npt.NDArray[np.int32]
) -> npt.NDArray[np.int32]:
    """Global ids of the keyed names of events (``tenant`` and ``name`` global ids): ``name``
    itself when every event is the super tenant's (no copy), else one string built per
    distinct tenant x name of the batch. Keying keyed names changes nothing."""
    sup = interner.lookup(SUPER_TENANT)
    other = tenant != 0
    if sup is not None:
        other &= tenant != sup
    if not other.any():
        return name
    out = name.copy()
    idx = np.flatnonzero(other)
    pairs = (tenant[idx].astype(np.int64) << 32) | name[idx].astype(np.int64)
    uniq, inverse = np.unique(pairs, return_inverse=True)
    keyed = np.empty(len(uniq), dtype=np.int32)
    for k, pair in enumerate(uniq.tolist()):
        t = interner.string(pair >> 32)
        keyed[k] = interner.intern(keyed_name(t, interner.string(pair & 0xFFFFFFFF)))
    out[idx] = keyed[inverse.reshape(-1)]
    return out


def bare_names(interner: Interner, name: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Global ids of the API names of keyed names (what a gateway sends, the tenant being in
    its own column): the inverse of ``keyed_names``; ``name`` itself when none is keyed."""
    uniq, inverse = np.unique(name, return_inverse=True)
    words = [interner.string(int(g)) for g in uniq.tolist()]
    if not any(KEY_SEPARATOR in w for w in words):
        return name
    bare = np.array([interner.intern(split(w)[1]) for w in words], dtype=np.int32)
    out: npt.NDArray[np.int32] = bare[inverse.reshape(-1)]
    return out
