"""wrong_channel: block an application on the channel it should not use (a BLOCK directive on
application x channel with a TTL), leaving its own channel untouched.
"""

from __future__ import annotations

from collections import defaultdict

from vigie.classify import views
from vigie.policy.families._context import Context, pct, row_key
from vigie.policy.model import TTL_SECONDS, DirectiveSpec, Suggestion, suggestion_id


def applications(ctx: Context, subs: list[views.SubscriptionView]) -> None:
    """Block each application on each wrong channel it calls through (its APIs together)."""
    groups: dict[tuple[str, str], list[views.SubscriptionView]] = defaultdict(list)
    for v in subs:
        if "wrong_channel" in v.classes:
            ch = str(v.evidence["wrong_channel"].get("channel", ""))
            groups[(v.application_id, ch)].append(v)
    for (app_id, channel), items in sorted(groups.items()):
        v0 = items[0]
        first = min(ctx.rows[row_key(v)].first["wrong_channel"]
                    for v in items)  # fmt: skip
        evs = [v.evidence["wrong_channel"] for v in items]
        requests = sum(int(e.get("requests", 0)) for e in evs)
        total = sum(ctx.rows[row_key(v)].requests for v in items)
        share = max(float(e.get("share", 0.0)) for e in evs)
        expected = str(evs[0].get("expected_channel", ""))
        spec = DirectiveSpec(
            action="BLOCK",
            application_id=app_id,
            channel=channel,
            ttl_seconds=TTL_SECONDS["wrong_channel"],
            reason=f"vigie: wrong channel {channel} (expected {expected})",
        )
        ctx.add(
            Suggestion(
                id=suggestion_id("wrong_channel", app_id, channel, first),
                class_name="wrong_channel",
                concerns="application",
                channel=channel,
                action="block_channel",
                summary=(
                    f"application {v0.application or app_id} calls through channel "
                    f"{channel} (expected {expected}) — block it there only"
                ),
                expected_effect=(
                    f"refuses its {requests:,} requests a week through {channel} "
                    f"(~{pct(share)} of its traffic); {expected} is untouched"
                ),
                owner_note=(
                    f"Application {v0.application or app_id} sends {requests:,} requests in "
                    f"7 days through the {channel} channel; its channel is {expected}. "
                    "Point it at the right gateway."
                ),
                evidence={
                    "wrong_channel": evs[0] if len(evs) == 1 else evs,
                    "requests_all_time": total,
                },
                directive=spec,
                refused_share=share,
                application_id=app_id,
                application=v0.application,
                owner=v0.owner,
            )
        )
