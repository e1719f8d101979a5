"""The suggestion families: one module per kind of trouble, each turning the views of its
classes into suggestions added to a ``Context``.

| module | classes | action |
|---|---|---|
| ``tiers`` | growing, throttle_hitter | subscription, application or advanced policy |
| ``temporary_limits`` | retry_storm, redundant | temporary_limit |
| ``revocations`` | dormant, retired | revoke |
| ``wrong_channel`` | wrong_channel | block_channel |
| ``error_prone`` | error_prone | contact_owner |
| ``deny_ip`` | auth_failing (client IPs) | deny_ip (a WSO2 deny policy, no directive) |
| ``health`` | traffic_anomaly, degraded, backend_down | temporary_limit (surge), contact_owner |

(``tiers`` proposes ``contact_owner`` instead when a throttled subscription fits its tier.)

``vigie.policy.suggest`` runs them in a fixed order, so the suggestions come out the same way
every time.
"""
