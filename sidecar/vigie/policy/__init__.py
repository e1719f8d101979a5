"""Suggestions, directives and WSO2 throttling policies.

``suggest`` turns classes, rates and evidence into suggestions; ``SuggestionBook`` keeps their
lifecycle and audit trail; ``PolicyEngine`` runs them inside the sidecar (directives pushed to
gateways, auto-approval, thresholds tuned at run time); ``wso2`` builds WSO2 Admin REST API v4
payloads and apictl files; ``apply`` sends them to WSO2; ``simulate`` replays a directive over
WSO2's analytics log.

Import the submodules directly: this front door stays light because the settings import it.
"""

from vigie.settings.policy import DEFAULT_TIER_LIMITS, PolicyConfig, TierLimit, parse_tier_limits

__all__ = ["DEFAULT_TIER_LIMITS", "PolicyConfig", "TierLimit", "parse_tier_limits"]
