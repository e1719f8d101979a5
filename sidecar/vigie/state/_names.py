"""The state's names: API names keyed by tenant, channel slots in use, strings still referred
to (what may be released). ``State``'s methods of the same names call these."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie.errors import ConfigError
from vigie.state import layout as L
from vigie.wire import tenants

if TYPE_CHECKING:
    from vigie.state.engine import State


def channel_index(state: State, name: str) -> int:
    """The slot of channel ``name``, taken if new (a released slot first)."""
    name = name or "default"
    if name in state.channels:
        return state.channels.index(name)
    if "" in state.channels:  # released by release_channels
        i = state.channels.index("")
        state.channels[i] = name
        return i
    if len(state.channels) >= L.MAX_CHANNELS:
        raise ConfigError(
            f"channel {name!r}: vigie tracks at most {L.MAX_CHANNELS} channels "
            f"({', '.join(state.channels)})"
        )
    state.channels.append(name)
    return len(state.channels) - 1


def channels_in_use(state: State) -> npt.NDArray[np.bool_]:
    """Which channel slots the rows refer to: a subscription's per-channel counts, a route
    row, an application registered on a channel."""
    used = np.zeros(L.MAX_CHANNELS, dtype=np.bool_)
    n = state.n_sub_rows
    live = (state.sub_i64[:n, L.S_KEY] != 0)[:, None]
    for f in (L.S_CH_REQ, L.S_DC_SUM):
        used |= ((state.sub_i64[:n, f : f + L.MAX_CHANNELS] != 0) & live).any(axis=0)
    route = state.route_i64[1 : state.n_route_rows, L.R_CHANNEL]  # route 0: the overflow
    app = state.app_channel[state.app_channel >= 0]
    for ids in (route, app):
        ch = np.unique(ids.astype(np.int64))
        used[ch[(ch >= 0) & (ch < L.MAX_CHANNELS)]] = True
    return used


def release_channels(state: State, keep: Iterable[int]) -> list[str]:
    """Release the channel slots that no row and none of ``keep`` refers to (their name
    becomes ``""``, a slot ``channel_index`` hands out again); returns their names."""
    used = state.channels_in_use()
    used[list(keep)] = True
    out = []
    for i, name in enumerate(state.channels):
        if name and not used[i]:
            state.channels[i] = ""
            out.append(name)
    return out


def tenant_keyed(state: State, columns: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    """The columns the kernel reads, ``api_name`` holding keyed names (an API is tenant x
    name x version: ``vigie.wire.tenants``); the WSO2 apiId of each API noted."""
    tenant = columns.get("tenant")
    if tenant is None:
        return columns
    keyed = tenants.keyed_names(state.interner, tenant, columns["api_name"])
    if keyed is not columns["api_name"]:
        columns = columns | {"api_name": keyed}
    uuid = columns.get("api_id")
    if uuid is not None and uuid.any():
        idx = np.flatnonzero(uuid)
        keys = (keyed[idx].astype(np.int64) << 32) | columns["api_version"][idx]
        pairs = np.unique(np.stack([keys, uuid[idx].astype(np.int64)], axis=1), axis=0)
        new = {k: u for k, u in pairs.tolist() if state.api_uuid.get(k) != u}
        if new:
            state.api_uuid = state.api_uuid | new
    return columns


def api_key(state: State, tenant: str, name: str, version: str) -> int:
    """The key of an API row (``A_KEY``), interning its strings."""
    ng = state.interner.intern(tenants.keyed_name(tenant, name))
    return (ng << 32) | state.interner.intern(version)


def api_identity(state: State, row: int) -> tuple[str, str, str, str]:
    """``(tenant, name, version, apiId)`` of an API row, the tenant as displayed."""
    a = state.api_i64[row]
    tenant, name = tenants.split(state.string(int(a[L.A_NAME])))
    uuid = state.api_uuid.get(int(a[L.A_KEY]), 0)
    return tenant, name, state.string(int(a[L.A_VERSION])), state.string(uuid)


def referenced_strings(state: State) -> npt.NDArray[np.bool_]:
    """Which interner ids the state refers to: live subscription rows (application id, name,
    owner, tier), API rows, route rows, registered applications and episode keys."""
    live = np.zeros(len(state.interner), dtype=np.bool_)
    live[0] = True
    rows = state.sub_rows()
    for f in (L.S_APP, L.S_APP_NAME, L.S_APP_OWNER, L.S_TIER):
        live[state.sub_i64[rows, f]] = True
    a = state.n_api_rows
    for f in (L.A_NAME, L.A_VERSION, L.A_CONTEXT):
        live[state.api_i64[:a, f]] = True
    live[state.route_i64[: state.n_route_rows, L.R_RESOURCE]] = True
    for gid, (name, owner) in state.app_info.items():
        live[[gid, name, owner]] = True
    live[list(state.api_uuid.values())] = True
    for key in (*state.episodes, *state.api_episodes):
        live[list(key)] = True
    return live


def release_strings(
    state: State, also_live: Iterable[npt.NDArray[Any]], epoch: int, now: float = 0.0
) -> int:
    """Release the interner's strings that neither the state nor ``also_live`` (e.g. the
    open streams' dictionaries) refer to; see ``Interner.release``. Returns how many."""
    live = state.referenced_strings()
    for ids in also_live:
        live[ids] = True
    dead = np.flatnonzero(~live)
    n = state.interner.release(dead.tolist(), epoch, now)
    if n:
        dead = dead[dead < len(state.app_channel)]
        state.app_channel[dead] = -1
    return n
