"""The policy engine inside the sidecar: suggestions from the live state, their lifecycle, the
directives they push, auto-approval, and classifier thresholds tuned at run time.

It is handed what it uses, never the process: the live state (``LiveState``: the state and its
lock), the directive table, its settings values and a ``Clock``.

Locks: the state lock is only held while the state is copied (a range of rows at a time) and
while thresholds change; the book's lock is taken after it is released, never the other way
round. Approving takes the book's lock, then the directive table's (inside ``put``); pushing
and judging an auto-approved directive also read the requests the state counted in its scope
(the state lock, briefly, inside the book's: ingest never takes the book's lock).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import orjson
from google.protobuf import json_format

from vigie.classify import views
from vigie.classify.live import LiveState, copy_chunked
from vigie.classify.views import iso
from vigie.clock import SYSTEM, Clock, wall_us
from vigie.directives.table import DirectiveTable
from vigie.errors import ConfigError, VigieError
from vigie.files import write_private
from vigie.policy import wso2
from vigie.policy.book import LIVE_STATES, LifecycleError, Record, SuggestionBook
from vigie.policy.codes import ThrottleCodes
from vigie.policy.suggest import Suggestion, suggest
from vigie.settings.policy import PolicyConfig
from vigie.state.thresholds import Thresholds
from vigie.v1 import directives_pb2 as dpb

log = logging.getLogger(__name__)

THRESHOLDS_FILE: Final = "thresholds.json"
AUTO_ACTOR: Final = "vigie-auto"
SYSTEM_ACTOR: Final = "vigie"
MODE_NAMES: Final[dict[int, str]] = {
    int(dpb.DIRECTIVE_MODE_SHADOW): "SHADOW",
    int(dpb.DIRECTIVE_MODE_ENFORCE): "ENFORCE",
}
# an enforced auto-approved directive is judged on at least this many matching requests
MIN_JUDGED_REQUESTS: Final = 100


@dataclasses.dataclass(frozen=True, slots=True)
class ThresholdInfo:
    name: str
    value: float
    default: float
    doc: str
    start_up_only: bool
    tuned: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Exported:
    suggestion_id: str
    request: wso2.AdminRequest
    body: dict[str, Any]
    file_name: str


class PolicyEngine:
    """Suggestions of ``live``'s state, their book under ``state_dir``, the directives they
    push to ``directives``; ``defaults`` are the thresholds a reset returns to (the settings')."""

    def __init__(
        self,
        live: LiveState,
        directives: DirectiveTable,
        config: PolicyConfig,
        defaults: Thresholds,
        state_dir: Path,
        refresh_seconds: float,
        clock: Clock = SYSTEM,
        throttle_codes: Callable[[int], ThrottleCodes] | None = None,
        settle_store: Callable[[], bool] | None = None,
    ) -> None:
        self.live = live
        # waits until every applied batch is in the store (what throttle_codes reads)
        self.settle_store = settle_store
        # the WSO2 throttle codes of each subscription at an event time (from the store)
        self.throttle_codes = throttle_codes
        self.directives = directives
        self.config = config
        self.defaults = defaults
        self.clock = clock
        self.dir = state_dir
        self.book = SuggestionBook(self.dir, clock)
        self.refresh_seconds = refresh_seconds
        self._last_refresh = float("-inf")
        # whether this instance takes the fleet's auto-approvals now (``Fleet.decides_auto``:
        # one instance at a time, the others receive its decisions); a fleet of one always does
        self.decides_auto: Callable[[], bool] = lambda: True
        self._auto_tried: set[str] = set()  # proposals this instance tried to auto-approve
        self.tuned: dict[str, float] = {}
        self._load_thresholds()

    def now_us(self) -> int:
        return wall_us(self.clock)

    # -----------------------------------------------------------------------------------------
    # suggestions from the state
    # -----------------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> int:
        """Recompute suggestions; return how many are new. Cheap when done recently.

        What the book holds after a refresh depends on the state and the fleet's decisions
        only, never on when the earlier refreshes fell: a proposal no longer supported leaves
        the book (``merge``). Every refresh, forced (an operator asks) or in the background,
        copies the state and then waits until the store holds every batch applied so far (at
        most ``SETTLE_TIMEOUT_S``), so the advice by throttle code reads at least the events
        the classes saw."""
        mono = self.clock.monotonic()
        if not force and mono - self._last_refresh < self.refresh_seconds:
            return 0
        self._last_refresh = mono
        # copied a range of rows at a time: ingest waits for one range, never for the rules
        frozen = copy_chunked(self.live, routes=False)
        if self.settle_store is not None and not self.settle_store():
            log.warning("the store is behind the state: advice by throttle code may lag")
        return self.merge(suggest(frozen, None, self.config, self._codes(frozen.now_us)))

    def _codes(self, now_us: int) -> ThrottleCodes | None:
        """The throttle codes, or None (no store, or it cannot be read: the advice then goes
        by the tiers alone, as without a store)."""
        if self.throttle_codes is None or now_us <= 0:
            return None
        try:
            return self.throttle_codes(now_us)
        except VigieError as exc:
            log.warning("throttle codes unavailable, advice by tier only: %s", exc)
            return None

    def merge(self, candidates: Iterable[Suggestion]) -> int:
        fresh = {s.id: s for s in candidates}
        new: list[Record] = []
        with self.book.lock:
            now = self.book.now_us()
            for sid, s in fresh.items():
                rec = self.book.records.get(sid)
                if rec is None:
                    rec = Record(s, "proposed", now, now)
                    self.book.records[sid] = rec
                    self.book.audit(
                        sid, SYSTEM_ACTOR, "proposed", "", "proposed", s.summary, sync=False
                    )
                    new.append(rec)
                elif rec.state == "proposed":
                    rec.suggestion = s  # evidence and sizing follow the state until decided
            for rec in self.book:
                if rec.state == "proposed" and rec.id not in fresh:
                    self.book.transition(
                        rec,
                        "withdrawn",
                        SYSTEM_ACTOR,
                        "withdrawn",
                        f"{rec.suggestion.class_name} no longer holds",
                    )
                    # nobody decided on it (a decision moves it out of "proposed"): it leaves
                    # the book, its audit trail stays, and it is proposed again under the same
                    # id if its class holds again. So the book is the fleet's decisions plus
                    # what the state shows now, whenever the refreshes fell
                    del self.book.records[rec.id]
                    self._auto_tried.discard(rec.id)
            self.book.sync()
            self.book.save()
            if self.decides_auto():  # the fleet's one decider: the others get its decisions
                for rec in list(self.book):
                    if (rec.state == "proposed" and rec.suggestion.auto_eligible
                            and rec.id not in self._auto_tried):  # fmt: skip
                        self._auto_tried.add(rec.id)  # refused once: left to an operator
                        self._auto_approve(rec)
        return len(new)

    def _auto_approve(self, rec: Record) -> None:
        c = self.config
        spec = rec.suggestion.directive
        assert spec is not None
        ttl = int(min(c.auto_approve_ttl_seconds, spec.ttl_seconds))
        try:
            self._approve(rec, AUTO_ACTOR, rec.suggestion.auto_approval, dpb.DIRECTIVE_MODE_SHADOW,
                          ttl, auto=True)  # fmt: skip
        except VigieError as exc:  # refused by the directive table: stays proposed
            log.warning("auto-approval of %s refused: %s", rec.id, exc)

    # -----------------------------------------------------------------------------------------
    # decisions
    # -----------------------------------------------------------------------------------------
    def approve(self, sid: str, actor: str, reason: str, mode: int, ttl_seconds: int) -> Record:
        mode = mode or dpb.DIRECTIVE_MODE_SHADOW
        if mode not in MODE_NAMES:
            raise LifecycleError(f"mode must be SHADOW or ENFORCE, got {mode}")
        if ttl_seconds < 0:
            raise LifecycleError("ttl must be positive")
        if ttl_seconds > self.directives.max_ttl_seconds:
            raise LifecycleError(
                f"ttl must be at most {self.directives.max_ttl_seconds / 86_400:g} days "
                "(max_directive_ttl_seconds)"
            )
        with self.book.lock:
            rec = self.book.get(sid)
            self._approve(rec, actor, reason, mode, ttl_seconds, auto=False)
            return rec

    def _approve(
        self, rec: Record, actor: str, reason: str, mode: int, ttl_seconds: int, auto: bool
    ) -> None:
        s = rec.suggestion
        now = self.book.now_us()
        if rec.state == "pushed" and s.directive is not None:
            if mode == rec.mode:
                raise LifecycleError(
                    f"{s.id} is already pushed in {MODE_NAMES[mode]} mode "
                    f"(expires {_iso(rec.expires_at_us)})"
                )
            expires = now + ttl_seconds * 1_000_000 if ttl_seconds else rec.expires_at_us
            d = self.directives.put(s.directive.build(s.id, mode, expires), actor, reason)
            rec.mode, rec.expires_at_us = mode, expires
            rec.auto = rec.auto and auto
            self.book.transition(rec, "pushed", actor, f"mode {MODE_NAMES[mode]}", reason,
                                 {"directive": _directive_json(d)})  # fmt: skip
            self.book.save()
            return
        if rec.state != "proposed":
            raise LifecycleError(
                f"{s.id} is {rec.state}: only a proposed suggestion can be approved"
            )
        if s.directive is None:
            rec.auto = auto
            self.book.transition(rec, "approved", actor, "approved", reason,
                                 {"wso2": s.wso2.to_json() if s.wso2 else None})  # fmt: skip
            self.book.save()
            return
        ttl = ttl_seconds or s.directive.ttl_seconds
        expires = now + ttl * 1_000_000
        # validated, persisted, pushed to every gateway, audited
        d = self.directives.put(s.directive.build(s.id, mode, expires), actor, reason)
        rec.mode, rec.expires_at_us, rec.pushed_at_us, rec.auto = mode, expires, now, auto
        rec.scope_requests_at_push = self._scope_requests(rec)
        self.book.transition(rec, "pushed", actor, "approved", reason,
                             {"directive": _directive_json(d)})  # fmt: skip
        self.book.save()

    def reject(self, sid: str, actor: str, reason: str) -> Record:
        with self.book.lock:
            rec = self.book.get(sid)
            if rec.state != "proposed":
                raise LifecycleError(
                    f"{sid} is {rec.state}: only a proposed suggestion can be rejected"
                )
            self.book.transition(rec, "rejected", actor, "rejected", reason)
            self.book.save()
            return rec

    def withdraw(self, sid: str, actor: str, reason: str) -> Record:
        with self.book.lock:
            rec = self.book.get(sid)
            if rec.state not in ("proposed", *LIVE_STATES):
                raise LifecycleError(f"{sid} is {rec.state}: nothing to withdraw")
            removed = rec.state == "pushed" and self.directives.remove(sid, actor, reason)
            self.book.transition(rec, "withdrawn", actor, "withdrawn", reason,
                                 {"directive_removed": bool(removed)})  # fmt: skip
            self.book.save()
            return rec

    # -----------------------------------------------------------------------------------------
    # WSO2 policies
    # -----------------------------------------------------------------------------------------
    def export(
        self,
        ids: list[str],
        fmt: str,
        actor: str,
        apim_version: str = wso2.DEFAULT_APIM_VERSION,
        include_proposed: bool = False,
    ) -> tuple[list[Exported], list[str]]:
        if fmt not in ("wso2-admin", "apictl"):
            raise LifecycleError(f"format must be wso2-admin or apictl, got {fmt!r}")
        out: list[Exported] = []
        skipped: list[str] = []
        with self.book.lock:
            if ids:
                records = [self.book.get(i) for i in ids]
            else:
                wanted = (*LIVE_STATES, "proposed") if include_proposed else LIVE_STATES
                records = [r for r in self.book if r.state in wanted and r.suggestion.wso2]
            for rec in records:
                req = rec.suggestion.wso2
                if req is None:
                    skipped.append(f"{rec.id}: {rec.suggestion.action} has no WSO2 payload")
                    continue
                if rec.state not in LIVE_STATES and not (
                    include_proposed and rec.state == "proposed"
                ):
                    skipped.append(f"{rec.id}: {rec.state} (approve it first)")
                    continue
                if fmt == "apictl":
                    if req.schema not in wso2.APICTL_SUBTYPES:
                        skipped.append(
                            f"{rec.id}: a {req.schema} (deny policy) has no apictl form; "
                            "use --format wso2-admin or `vigie policies apply`"
                        )
                        continue
                    body = wso2.apictl_file(req, apim_version)
                    name = wso2.apictl_file_name(req)
                else:
                    body = req.payload
                    key = req.policy_name or str(req.payload.get("conditionValue", rec.id))
                    name = f"{req.schema}-{wso2.policy_name(key)}.json"
                out.append(Exported(rec.id, req, body, name))
                if rec.state in LIVE_STATES:
                    rec.exported = True
                    to_state = "exported" if rec.state == "approved" else rec.state
                    self.book.transition(rec, to_state, actor, "exported", f"format {fmt}",
                                         {"file": name})  # fmt: skip
            self.book.save()
        return out, skipped

    def record_applied(self, sid: str, actor: str, target: str, outcome: str, ok: bool) -> Record:
        with self.book.lock:
            rec = self.book.get(sid)
            self.book.audit(sid, actor, "applied" if ok else "apply_failed", rec.state,
                            rec.state, outcome[:500], {"target": target})  # fmt: skip
            return rec

    # -----------------------------------------------------------------------------------------
    # background: expiry, promotion, refresh
    # -----------------------------------------------------------------------------------------
    def tick(self) -> None:
        _, table = self.directives.snapshot()
        live = {d.id: d for d in table}
        hits = {h.directive_id: h for h in self.directives.hits()}
        now = self.book.now_us()
        changed = False
        decider = self.decides_auto()  # promotions and demotions are the decider's too
        with self.book.lock:
            for rec in self.book:
                if rec.state == "pushed" and rec.id not in live:
                    if now >= rec.expires_at_us:
                        self.book.transition(rec, "expired", SYSTEM_ACTOR, "expired",
                                             "the directive's TTL passed")  # fmt: skip
                    else:
                        self.book.transition(rec, "withdrawn", SYSTEM_ACTOR, "withdrawn",
                                             "its directive was removed")  # fmt: skip
                    changed = True
                elif rec.state != "pushed" and rec.id in live:
                    d = live[rec.id]
                    rec.mode, rec.expires_at_us = d.mode, d.expires_at_us
                    rec.pushed_at_us = rec.pushed_at_us or now
                    self.book.transition(rec, "pushed", SYSTEM_ACTOR, "reconciled",
                                         "its directive is in the table")  # fmt: skip
                    changed = True
                elif rec.state == "pushed" and rec.auto and decider:
                    changed |= self._judge_auto(rec, hits.get(rec.id), now)
            if changed:
                self.book.save()
        self.refresh()

    def _judge_auto(self, rec: Record, h: dpb.DirectiveHits | None, now: int) -> bool:
        c = self.config
        spec = rec.suggestion.directive
        if spec is None:
            return False
        if rec.mode == dpb.DIRECTIVE_MODE_SHADOW and not rec.promotion_checked:
            if now < rec.pushed_at_us + c.auto_approve_shadow_seconds * 1e6:
                return False
            shadow = h.shadow_hits if h else 0
            matched = shadow + (h.passed if h else 0)
            share = shadow / matched if matched else 1.0
            rec.promotion_checked = True
            lacking = self._lacking_evidence(rec, matched)
            if lacking:
                self.book.audit(
                    rec.id, AUTO_ACTOR, "kept in shadow", "pushed", "pushed",
                    f"no evidence to enforce on: {lacking}; an operator decides",
                    {"shadow_hits": shadow, "matched": matched},
                )  # fmt: skip
            elif share <= c.auto_approve_max_share:
                d = spec.build(rec.id, dpb.DIRECTIVE_MODE_ENFORCE, rec.expires_at_us)
                why = (f"in shadow it would have refused {share:.1%} ({shadow} of {matched}), "
                       f"at most {c.auto_approve_max_share:.1%}")  # fmt: skip
                self.directives.put(d, AUTO_ACTOR, f"promoted to enforce: {why}")
                rec.mode = dpb.DIRECTIVE_MODE_ENFORCE
                rec.baseline = ((h.enforced_hits if h else 0), (h.passed if h else 0))
                self.book.transition(
                    rec, "pushed", AUTO_ACTOR, "mode ENFORCE", why,
                    {"shadow_hits": shadow, "matched": matched, "share": round(share, 4),
                     "max_share": c.auto_approve_max_share,
                     "min_matched": c.auto_approve_min_matched},
                )  # fmt: skip
            else:
                self.book.audit(
                    rec.id, AUTO_ACTOR, "kept in shadow", "pushed", "pushed",
                    f"in shadow it would have refused {share:.1%} ({shadow} of {matched}), "
                    f"more than {c.auto_approve_max_share:.1%}: an operator decides",
                    {"shadow_hits": shadow, "matched": matched, "share": round(share, 4),
                     "max_share": c.auto_approve_max_share},
                )  # fmt: skip
            return True
        if rec.mode == dpb.DIRECTIVE_MODE_ENFORCE and h is not None:
            refused = h.enforced_hits - rec.baseline[0]
            passed = h.passed - rec.baseline[1]
            total = refused + passed
            if total >= MIN_JUDGED_REQUESTS and refused / total > c.auto_approve_max_share:
                d = spec.build(rec.id, dpb.DIRECTIVE_MODE_SHADOW, rec.expires_at_us)
                self.directives.put(d, AUTO_ACTOR, "back to shadow")
                rec.mode = dpb.DIRECTIVE_MODE_SHADOW
                self.book.transition(
                    rec, "pushed", AUTO_ACTOR, "mode SHADOW",
                    f"enforcing, it refused {refused / total:.1%} ({refused} of {total}), more "
                    f"than {c.auto_approve_max_share:.1%}: back to shadow, an operator decides",
                )  # fmt: skip
                return True
        return False

    def _scope_requests(self, rec: Record) -> int:
        """Requests the state has counted in the scope of ``rec``'s directive."""
        spec = rec.suggestion.directive
        if spec is None:
            return -1
        with self.live.lock:
            return views.scope_requests(
                self.live.state, spec.application_id, spec.api_name, spec.api_version
            )

    def _lacking_evidence(self, rec: Record, matched: int) -> str:
        """Why the hits reported for ``rec`` in shadow are no evidence to enforce on (empty:
        they are): untrusted gateways, fewer than ``auto_approve_min_matched`` matching
        requests, or more than the state counted in the scope since the directive was pushed."""
        c = self.config
        if not c.trust_gateway_hits:
            return (
                "the gateways' hit reports are not authenticated "
                "(trust_unauthenticated_gateways is off)"
            )
        if matched < c.auto_approve_min_matched:
            return (
                f"{matched} matching request(s) reported, fewer than "
                f"auto_approve_min_matched = {c.auto_approve_min_matched}"
            )
        if rec.scope_requests_at_push < 0:
            return "the requests in its scope when it was pushed are not known"
        seen = self._scope_requests(rec) - rec.scope_requests_at_push
        if matched > seen:
            return (
                f"the gateways reported {matched} matching requests, vigie counted {seen} in "
                "its scope since it was pushed: the reports are not plausible"
            )
        return ""

    def counts(self) -> dict[str, int]:
        return self.book.counts()

    # -----------------------------------------------------------------------------------------
    # thresholds
    # -----------------------------------------------------------------------------------------
    def _load_thresholds(self) -> None:
        path = self.dir / THRESHOLDS_FILE
        if not path.exists():
            return
        try:
            doc = orjson.loads(path.read_bytes())
            values = {str(k): float(v) for k, v in doc["values"].items()}
            with self.live.lock:
                new = self.live.state.thresholds.replace(**values)
                self.live.state.set_thresholds(new)
            self.tuned = values
            log.info("thresholds tuned at run time restored: %s", values)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(self.clock.wall()))
            aside = path.with_name(f"{THRESHOLDS_FILE}.unusable-{stamp}")
            os.replace(path, aside)
            log.error("%s not applied (%s); set aside as %s", path, exc, aside.name)

    def thresholds(self) -> list[ThresholdInfo]:
        with self.live.lock:
            current = self.live.state.thresholds
        defaults = self.defaults
        windows = Thresholds.window_fields()
        docs = Thresholds.field_docs()
        return [
            ThresholdInfo(
                name=f.name,
                value=float(getattr(current, f.name)),
                default=float(getattr(defaults, f.name)),
                doc=docs[f.name],
                start_up_only=f.name in windows,
                tuned=f.name in self.tuned,
            )
            for f in dataclasses.fields(Thresholds)
        ]

    def set_thresholds(
        self, changes: dict[str, float], actor: str, reason: str, reset: bool = False
    ) -> list[ThresholdInfo]:
        if reset and changes:
            raise ConfigError("give either changes or reset, not both")
        if not reset and not changes:
            raise ConfigError("no threshold to change")
        for k, v in changes.items():
            if v != v or v in (float("inf"), float("-inf")):
                raise ConfigError(f"{k}: expected a finite number, got {v}")
        with self.live.lock:
            before = self.live.state.thresholds
            new = self.defaults if reset else before.replace(**changes)
            self.live.state.set_thresholds(new)  # refuses window lengths with the reason
        base = self.defaults.as_dict()
        self.tuned = {k: v for k, v in new.as_dict().items() if base[k] != v}
        self._save_thresholds(actor)
        diff = {
            k: {"from": before.as_dict()[k], "to": v}
            for k, v in new.as_dict().items()
            if before.as_dict()[k] != v
        }
        self.book.audit("thresholds", actor, "reset" if reset else "changed", "", "", reason,
                        {"changes": diff})  # fmt: skip
        self._last_refresh = float("-inf")  # classes may change: recompute soon
        return self.thresholds()

    def _save_thresholds(self, actor: str) -> None:
        path = self.dir / THRESHOLDS_FILE
        if not self.tuned:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        doc = {"values": self.tuned, "updated_at_us": self.now_us(), "actor": actor}
        write_private(tmp, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)


def _directive_json(d: dpb.Directive) -> dict[str, Any]:
    return json_format.MessageToDict(d, preserving_proto_field_name=True)


def _iso(us: int) -> str:
    return iso(us) or "-"
