"""The CLI's side of the admin service: a channel with the bearer token, typed errors, and the
fleet: the addresses of --admin and --fleet (each at most once), and the one instance of
several that a command talks to (``one_of``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import grpc

from vigie.errors import SidecarUnavailable, VigieError
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc

if TYPE_CHECKING:
    from vigie.state.engine import State

T = TypeVar("T")
DEFAULT_ADMIN: Final = "127.0.0.1:7356"  # the admin address the CLI asks without --admin
DEFAULT_STATE_DIR: Final = "./vigie-state"  # where it looks for admin.token without --state-dir


PROBE_TIMEOUT_S: Final = 10.0  # how long ``one_of`` waits for each instance (a cold one: its
# first status compiles the class kernels)


class AdminRefused(VigieError):
    """The sidecar refused an admin call; the message is the sidecar's."""

    exit_code = 2


class FleetError(VigieError):
    """The fleet given to a command is not usable as given (an address twice, an unreadable
    --fleet file)."""

    exit_code = 2


def read_fleet_file(path: str) -> list[str]:
    """The admin addresses of a --fleet file: one a line or comma-separated, ``#`` comments."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise FleetError(f"--fleet {path}: {exc.strerror or exc}") from None
    out: list[str] = []
    for line in text.splitlines():
        out.extend(a.strip() for a in line.split("#", 1)[0].split(",") if a.strip())
    if not out:
        raise FleetError(f"--fleet {path}: no address in it")
    return out


def fleet_addresses(admins: Sequence[str], fleet_file: str | None) -> tuple[str, ...]:
    """--admin's addresses then --fleet's (``VIGIE_ADMIN`` or the default with neither); an
    address given twice is refused: each instance is asked, and counted, once."""
    given = [*admins, *(read_fleet_file(fleet_file) if fleet_file else [])]
    seen: set[str] = set()
    for a in given:
        key = a.strip().lower()
        if key in seen:
            raise FleetError(
                f"{a} is given twice (--admin / --fleet): each instance is asked once, "
                "never counted twice"
            )
        seen.add(key)
    return tuple(a.strip() for a in given) or (default_admin(),)


def default_admin() -> str:
    """The sidecar to ask without --admin: ``VIGIE_ADMIN``, else ``DEFAULT_ADMIN``."""
    return os.environ.get("VIGIE_ADMIN", DEFAULT_ADMIN)


def read_token(token: str | None, token_file: str | None, state_dir: str | None) -> str:
    """The admin token: --token, then VIGIE_ADMIN_TOKEN, then a token file."""
    if token:
        return token
    env = os.environ.get("VIGIE_ADMIN_TOKEN")
    if env:
        return env
    candidates = [token_file, os.environ.get("VIGIE_ADMIN_TOKEN_FILE")]
    candidates.append(
        str(
            Path(state_dir or os.environ.get("VIGIE_STATE_DIR") or DEFAULT_STATE_DIR)
            / "admin.token"
        )
    )
    for c in candidates:
        if c and Path(c).exists():
            return Path(c).read_text().strip()
    if os.environ.get("VIGIE_ADMIN_CERT_FILE"):
        return ""  # a client certificate identifies the caller (admin_auth = mtls)
    raise SidecarUnavailable(
        "no admin token: pass --token-file (the sidecar writes <state_dir>/admin.token) "
        "or set VIGIE_ADMIN_TOKEN"
    )


def _file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SidecarUnavailable(f"{path}: {exc.strerror or exc}") from None


def admin_channel(target: str, env: dict[str, str] | None = None) -> grpc.Channel:
    """A channel to a sidecar's admin service: plaintext, or TLS when ``VIGIE_ADMIN_CA_FILE``
    names the CA of the sidecar's certificate (with ``VIGIE_ADMIN_CERT_FILE`` and
    ``VIGIE_ADMIN_KEY_FILE``: a client certificate, for mTLS; ``VIGIE_ADMIN_SERVER_NAME``:
    the name in the sidecar's certificate when it is not the target's host)."""
    env = dict(os.environ) if env is None else env
    ca = env.get("VIGIE_ADMIN_CA_FILE", "")
    if not ca:
        return grpc.insecure_channel(target)
    cert = env.get("VIGIE_ADMIN_CERT_FILE", "")
    key = env.get("VIGIE_ADMIN_KEY_FILE", "")
    creds = grpc.ssl_channel_credentials(
        root_certificates=_file(ca),
        private_key=_file(key) if key else None,
        certificate_chain=_file(cert) if cert else None,
    )
    name = env.get("VIGIE_ADMIN_SERVER_NAME", "")
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(target, creds, options=options)


class AdminClient:
    def __init__(self, target: str, token: str, timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = admin_channel(target)
        self.stub = apb_grpc.AdminStub(self._channel)
        self._md = (("authorization", f"Bearer {token}"),) if token else ()

    def call(self, method: Callable[..., T], request: Any) -> T:
        try:
            return method(request, metadata=self._md, timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            details = exc.details()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise SidecarUnavailable(
                    f"no sidecar answers at {self.target} ({code.name}: {details})"
                ) from None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise AdminRefused(
                    f"the sidecar at {self.target} refused the admin token"
                ) from None
            raise AdminRefused(f"{code.name}: {details}") from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def one_of(addresses: Sequence[str], token: str) -> tuple[AdminClient, str]:
    """The client of the first of ``addresses`` that answers, and a line saying which, which
    did not, and which are not among its peers (a change made through it would not reach
    them). None answering: ``SidecarUnavailable`` naming each."""
    failed: list[str] = []
    silent: list[str] = []
    for i, a in enumerate(addresses):
        c = AdminClient(a, token, timeout=PROBE_TIMEOUT_S)
        try:
            st = c.call(c.stub.GetStatus, apb.StatusRequest())
        except SidecarUnavailable as exc:
            c.close()
            failed.append(str(exc))
            silent.append(a)
            continue
        except VigieError:
            c.close()
            raise
        c.timeout = 10.0
        peers = {p.address for p in st.peers}
        strangers = [b for b in addresses[i + 1 :] if b not in peers]
        note = f"vigie: talking to {a} ({st.instance_id or st.sidecar_id}) for the fleet"
        if silent:
            note += "; no answer from " + "; ".join(failed)
        if strangers:
            note += (
                f"; {', '.join(strangers)} not among its fleet_peers: a change made through it "
                "does not reach them"
            )
        return c, note
    raise SidecarUnavailable("no instance of the fleet answers: " + "; ".join(failed))


def fetch_states(clients: Sequence[AdminClient]) -> list[State]:
    """Each sidecar's state, read with ``ExportState``."""
    from vigie.state.merge import state_from_chunks  # noqa: PLC0415 - keep `vigie --help` fast

    out = []
    for c in clients:
        try:
            chunks = list(
                c.stub.ExportState(apb.ExportStateRequest(), metadata=c._md, timeout=c.timeout)
            )
        except Exception:
            # the same typed errors as unary calls
            c.call(c.stub.GetStatus, apb.StatusRequest())
            raise
        out.append(state_from_chunks(chunks))
    return out
