"""error_prone: no limit (error loops are the client's); tell the owner what its client gets
wrong.
"""

from __future__ import annotations

from vigie.classify import views
from vigie.policy.families._context import Context, Row, Who, pct
from vigie.policy.model import Suggestion, suggestion_id


def subscription(ctx: Context, v: views.SubscriptionView, row: Row, common: Who) -> None:
    """Contact the owner of an error_prone subscription."""
    key = (v.application_id, v.api, v.api_version)
    ev = v.evidence.get("error_prone", {})
    ctx.add(
        Suggestion(
            id=suggestion_id("error_prone", *key, row.first["error_prone"]),
            class_name="error_prone",
            concerns="subscription",
            action="contact_owner",
            summary=(
                f"{v.application or v.application_id} on {v.api} {v.api_version}: "
                f"{pct(float(ev.get('share', 0)))} client errors — tell the owner"
            ),
            expected_effect="none on traffic: no limit (error loops are the client's)",
            owner_note=(
                f"{pct(float(ev.get('share', 0)))} of its requests in the last "
                f"{float(ev.get('window_seconds', 3600)) / 60:g} minutes are 4xx client "
                f"errors (not 429): {ev.get('client_errors', 0)} of "
                f"{ev.get('requests', 0)}. Check what the client sends (credentials, "
                "parameters, resource paths) instead of repeating it."
            ),
            evidence={"error_prone": ev},
            **common,
        )
    )
