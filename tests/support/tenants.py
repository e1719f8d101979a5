"""Two WSO2 tenants with an API of the same name and version, as analytics log lines.

``carbon.super`` and ``acme.com`` both publish ``Orders 1.0.0``. In the super tenant, ``Shop``
calls it on day 0 only (a dormant subscription by day 40) and ``Kiosk`` calls it every day; in
``acme.com``, ``Acme-App`` calls it on day 0 only, some calls throttled (its ``Orders`` is a
retired API by day 40). Whoever mixes the tenants up sees one ``Orders`` with everybody's
requests, used every day. ``Expected`` holds the naive counts of what was written, per tenant.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.wso2log import SUPER, App, LogWriter, at

ACME = "acme.com"
API, VERSION = "Orders", "1.0.0"
DAYS = 40


@dataclass
class Expected:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (tenant, app) -> n
    throttled: Counter[str] = field(default_factory=Counter)  # tenant -> n
    apps: dict[str, App] = field(default_factory=dict)

    def per_tenant(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (tenant, _), n in self.requests.items():
            out[tenant] += n
        return dict(out)


def write_two_tenants(path: Path) -> Expected:
    shop, kiosk, acme = App("Shop"), App("Kiosk"), App("Acme-App", owner="bob@acme.com")
    exp = Expected(apps={"Shop": shop, "Kiosk": kiosk, "Acme-App": acme})
    w = LogWriter(seed=5)
    for k in range(50):
        w.response(at(hours=1, seconds=k), shop, API, VERSION, user_ip="192.0.2.1")
        exp.requests[(SUPER, "Shop")] += 1
    for k in range(30):
        w.response(at(hours=2, seconds=k), acme, API, VERSION, tenant=ACME, user_ip="198.51.100.7")
        exp.requests[(ACME, "Acme-App")] += 1
    for k in range(10):
        w.fault(at(hours=2, minutes=1, seconds=k), acme, API, VERSION, error_code=900803,
                tenant=ACME)  # fmt: skip
        exp.requests[(ACME, "Acme-App")] += 1
        exp.throttled[ACME] += 1
    for day in range(DAYS + 1):
        for k in range(2 if day else 20):
            w.response(at(days=day, hours=3, seconds=k), kiosk, API, VERSION)
            exp.requests[(SUPER, "Kiosk")] += 1
    w.write(path)
    return exp
