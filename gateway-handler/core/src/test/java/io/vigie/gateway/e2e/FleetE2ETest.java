package io.vigie.gateway.e2e;

import static io.vigie.gateway.testing.SidecarProcess.waitFor;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vigie.gateway.Counters;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.testing.SidecarProcess;
import io.vigie.wire.v1.GatewayInfo;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One gateway streaming to two real {@code vigie serve} processes (a fleet of two): each receives
 * every event; one killed costs drops counted for it alone while the other still gets everything.
 * Time is the system's (real processes); every wait is a bounded poll.
 */
@Tag("e2e")
class FleetE2ETest {
    @TempDir
    Path tmp;

    @BeforeAll
    static void needsTheCli() {
        Assumptions.assumeTrue(SidecarProcess.cli() != null,
                "set -Dvigie.cli=/path/to/.venv/bin/vigie (make test-java does) to run the end-to-end tests");
    }

    private static void offer(VigieAgent a, int k) {
        a.offer(a.record().applicationId("app-" + (k % 5)).applicationName("Application " + (k % 5))
                .apiName("Orders").apiVersion("v1").apiContext("/orders/v1").resourceTemplate("/orders/{id}")
                .httpMethod(HttpMethods.GET).httpStatus(200).latencyUs(1_000 + k % 100)
                .eventTimeUs(System.currentTimeMillis() * 1000));
    }

    private static GatewayInfo gateway(SidecarProcess sc, String id) {
        return sc.status().getGatewaysList().stream().filter(g -> g.getGatewayId().equals(id)).findFirst()
                .orElse(null);
    }

    @Test
    void bothInstancesReceiveEveryEventAndAKilledOneCostsDropsCountedForItAlone() throws Exception {
        try (SidecarProcess one = SidecarProcess.start(SidecarProcess.cli(), tmp.resolve("one"));
                SidecarProcess two = SidecarProcess.start(SidecarProcess.cli(), tmp.resolve("two"));
                VigieAgent a = VigieAgent.builder()
                        .sidecarAddresses(List.of(one.telemetryAddress(), two.telemetryAddress()))
                        .gatewayId("gw-fleet").channel("main").flushIntervalMs(5).reportIntervalMs(200)
                        .backoffMs(50, 500).disconnectedHoldMs(0).build()) {
            waitFor("both streams", 60, () -> "CONNECTED".equals(a.streamState()));
            long before1 = one.status().getEventsApplied();
            long before2 = two.status().getEventsApplied();
            int n = 5_000;
            for (int k = 0; k < n; k++) {
                offer(a, k);
            }
            waitFor("both instances to acknowledge every event", 120,
                    () -> a.targetCounters(0).acked == n && a.targetCounters(1).acked == n);
            assertEquals(n, one.status().getEventsApplied() - before1);
            assertEquals(n, two.status().getEventsApplied() - before2);
            for (SidecarProcess sc : List.of(one, two)) {
                waitFor("the handler's report on each instance", 30, () -> {
                    GatewayInfo g = gateway(sc, "gw-fleet");
                    return g != null && g.getHandlerOffered() == n && g.getHandlerSent() == n;
                });
                assertEquals(0, gateway(sc, "gw-fleet").getHandlerDropped());
            }

            two.kill();
            waitFor("the second stream to fail", 30, () -> !"CONNECTED".equals(a.targetState(1)));
            int more = 1_000;
            for (int k = 0; k < more; k++) {
                offer(a, k);
            }
            waitFor("the first instance to get everything, the second's share counted", 60, () -> {
                Counters.Snapshot c2 = a.targetCounters(1);
                return a.targetCounters(0).acked == n + more && c2.acked + c2.dropped() == n + more;
            });
            assertEquals(n + more, one.status().getEventsApplied() - before1);
            assertEquals(0, a.targetCounters(0).dropped(), "the live instance lost nothing");
            assertEquals(more, a.targetCounters(1).dropped(), "the dead instance's share: " + a.targetCounters(1));
            waitFor("the first instance's report", 30, () -> {
                GatewayInfo g = gateway(one, "gw-fleet");
                return g != null && g.getHandlerOffered() == n + more;
            });
            assertEquals(0, gateway(one, "gw-fleet").getHandlerDropped(),
                    "each instance's report says what was dropped for it");
        }
    }
}
