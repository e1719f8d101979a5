package io.vigie.gateway.e2e;

import static io.vigie.gateway.testing.SidecarProcess.waitFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.Counters;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.Rule;
import io.vigie.gateway.testing.SidecarProcess;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveHits;
import io.vigie.wire.v1.DirectiveList;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.GatewayInfo;
import io.vigie.wire.v1.ListDirectivesRequest;
import io.vigie.wire.v1.PutDirectiveRequest;
import io.vigie.wire.v1.RemoveDirectiveRequest;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The handler core against a real {@code vigie serve} process: two processes, a real gRPC
 * stream. Time is the system's here (real processes); every wait is a bounded poll.
 */
@Tag("e2e")
class RealSidecarE2ETest {
    @TempDir
    Path tmp;

    @BeforeAll
    static void needsTheCli() {
        Assumptions.assumeTrue(SidecarProcess.cli() != null,
                "set -Dvigie.cli=/path/to/.venv/bin/vigie (make test-java does) to run the end-to-end tests");
    }

    private static VigieAgent.Builder agent(SidecarProcess sc, String gatewayId) {
        return VigieAgent.builder().sidecarAddress(sc.telemetryAddress()).gatewayId(gatewayId).channel("main")
                .region("dc1").flushIntervalMs(5).reportIntervalMs(200).backoffMs(50, 500);
    }

    private static void offer(VigieAgent a, int k) {
        a.offer(a.record().applicationId("app-" + (k % 7)).applicationName("Application " + (k % 7))
                .apiName("Orders").apiVersion("v1").apiContext("/orders/v1").resourceTemplate("/orders/{id}")
                .httpMethod(HttpMethods.GET).httpStatus(k % 10 == 0 ? 503 : 200).latencyUs(1_000 + k % 100)
                .subscriptionTier("Gold").eventTimeUs(System.currentTimeMillis() * 1000)
                // the columns of the tenant, API id, client address (a hash, or plain) and backend status
                .tenant(k % 2 == 0 ? "carbon.super" : "acme.com").apiId("6f1d0b2c-5a4e-4c1b-9d7e-0a1b2c3d4e5f")
                .clientIp(k % 3 == 0 ? null : "203.0.113." + (k % 200) + ", 10.0.0.1")
                .targetStatus(k % 10 == 0 ? 500 : 200));
    }

    private static GatewayInfo gateway(SidecarProcess sc, String id) {
        return sc.status().getGatewaysList().stream().filter(g -> g.getGatewayId().equals(id)).findFirst()
                .orElse(null);
    }

    /**
     * N offered (some dropped by a small queue under a burst) = sidecar's applied + counted drops;
     * the events carry every column the handler fills (tenant, API id, client address, backend status).
     */
    @Test
    void everyOfferedEventIsAppliedOrCountedAsDropped() throws Exception {
        try (SidecarProcess sc = SidecarProcess.start(SidecarProcess.cli(), tmp.resolve("state"));
                VigieAgent a = agent(sc, "gw-accounting").queueCapacity(2_048).build()) {
            long before = sc.status().getEventsApplied();
            int threads = 2;
            int each = 25_000;
            CountDownLatch go = new CountDownLatch(1);
            Thread[] ts = new Thread[threads];
            for (int t = 0; t < threads; t++) {
                ts[t] = new Thread(() -> {
                    try {
                        go.await();
                    } catch (InterruptedException e) {
                        return;
                    }
                    for (int k = 0; k < each; k++) {
                        offer(a, k);
                    }
                });
                ts[t].start();
            }
            go.countDown();
            for (Thread t : ts) {
                t.join();
            }
            long n = (long) threads * each;
            waitFor("the queue to drain and every batch to be acknowledged", 120, () -> {
                Counters.Snapshot c = a.counters();
                return c.queueDepth == 0 && c.acked + c.dropped() == n;
            });
            Counters.Snapshot c = a.counters();
            assertEquals(n, c.offered);
            assertEquals(0, c.droppedSendFailed + c.droppedDisconnected);
            assertEquals(n - c.dropped(), sc.status().getEventsApplied() - before,
                    "sidecar applied = offered - counted drops (" + c + ")");
            waitFor("the handler's report", 30, () -> {
                GatewayInfo g = gateway(sc, "gw-accounting");
                return g != null && g.getHandlerOffered() == n;
            });
            GatewayInfo g = gateway(sc, "gw-accounting");
            assertEquals(c.dropped(), g.getHandlerDropped());
            assertEquals(n - c.dropped(), g.getEvents());
            assertEquals("main", g.getChannel());
            assertEquals("dc1", g.getRegion());
            assertEquals(VigieAgent.VERSION, g.getHandlerVersion());
        }
    }

    /** Offers the gateway makes while its sidecar is dead (every one must return before it restarts). */
    private static final int OUTAGE_OFFERS = 20_000;

    /** Killed mid-stream: offer keeps returning, drops are counted, reconnects when back. */
    @Test
    void aKilledSidecarCostsCountedDropsAndTheHandlerReconnects() throws Exception {
        try (SidecarProcess sc = SidecarProcess.start(SidecarProcess.cli(), tmp.resolve("state"));
                VigieAgent a = agent(sc, "gw-kill").disconnectedHoldMs(0).build()) {
            // with a hold of 0, events offered while no stream is up are dropped at once
            waitFor("the stream", 60, () -> "CONNECTED".equals(a.streamState()));
            for (int k = 0; k < 1_000; k++) {
                offer(a, k);
            }
            waitFor("the first events to be acknowledged", 60, () -> a.counters().acked == 1_000);

            sc.kill();
            waitFor("the handler to see the sidecar gone", 60, () -> !"CONNECTED".equals(a.streamState()));
            // the gateway's traffic goes on while no sidecar is there: a blocking offer would wait
            // for one, and none is started before every one of these offers has returned (the join
            // is a hang guard, not a speed limit: no offer's duration is measured)
            AtomicLong completed = new AtomicLong();
            Thread traffic = new Thread(() -> {
                for (int k = 0; k < OUTAGE_OFFERS; k++) {
                    offer(a, k);
                    completed.incrementAndGet();
                }
            }, "gateway-traffic");
            traffic.start();
            traffic.join(300_000);
            assertEquals(OUTAGE_OFFERS, completed.get(), "offers returned while the sidecar was dead");
            assertTrue(!"CONNECTED".equals(a.streamState()), a.streamState()); // still dead, by construction
            long offeredDuringOutage = completed.get();
            waitFor("the outage's events to be counted as dropped", 30, () -> a.counters().droppedDisconnected > 0);
            Counters.Snapshot down = a.counters();
            assertEquals(1_000 + OUTAGE_OFFERS, down.offered);
            assertEquals("DISCONNECTED".equals(a.streamState()) || "CONNECTING".equals(a.streamState()), true,
                    a.streamState());

            sc.startProcess();
            waitFor("the handler to reconnect", 60, () -> "CONNECTED".equals(a.streamState()));
            assertTrue(a.counters().reconnects >= 1);
            for (int k = 0; k < 500; k++) {
                offer(a, k);
            }
            waitFor("the new sidecar to apply the new events", 60, () -> {
                GatewayInfo g = gateway(sc, "gw-kill");
                return g != null && g.getEvents() == 500;
            });
            long total = 1_000 + offeredDuringOutage + 500;
            waitFor("every event to be acknowledged or counted", 30, () -> {
                Counters.Snapshot c = a.counters();
                return c.acked + c.dropped() == total;
            });
            Counters.Snapshot c = a.counters();
            assertEquals(total, c.offered);
            assertTrue(c.droppedDisconnected >= down.droppedDisconnected);
            assertTrue(c.dropped() > 0);
        }
    }

    private static Directive.Builder directive(String id, DirectiveMode mode) {
        return Directive.newBuilder().setId(id).setMode(mode).setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK)
                .setApplicationId("app-bad").setApiName("Orders").setReason("retry storm")
                .setExpiresAtUs(System.currentTimeMillis() * 1000 + 600_000_000L);
    }

    /** A directive put through the Admin service reaches the handler: enforced, then shadow only. */
    @Test
    void directivesSetInTheSidecarAreEnforcedOrOnlyCounted() throws Exception {
        try (SidecarProcess sc = SidecarProcess.start(SidecarProcess.cli(), tmp.resolve("state"));
                VigieAgent a = agent(sc, "gw-directives").build()) {
            waitFor("the stream", 60, () -> "CONNECTED".equals(a.streamState()));
            assertNull(a.check("app-bad", "Orders", "v1"));
            sc.admin().putDirective(PutDirectiveRequest.newBuilder().setActor("e2e").setReason("test")
                    .setDirective(directive("d-1", DirectiveMode.DIRECTIVE_MODE_ENFORCE)).build());
            waitFor("the directive to reach the handler", 30, () -> a.directives().activeCount() == 1);
            Rule r = a.check("app-bad", "Orders", "v1");
            assertNotNull(r, "enforced");
            assertEquals(900805, r.errorCode());
            assertTrue(r.faultJson().contains("(vigie directive d-1: retry storm)\"}"), r.faultJson());
            assertNull(a.check("app-good", "Orders", "v1"));

            sc.admin().putDirective(PutDirectiveRequest.newBuilder().setActor("e2e")
                    .setDirective(directive("d-1", DirectiveMode.DIRECTIVE_MODE_SHADOW)).build());
            waitFor("the shadow version to reach the handler", 30, () -> a.check("app-bad", "Orders", "v1") == null);
            for (int k = 0; k < 9; k++) {
                assertNull(a.check("app-bad", "Orders", "v1"), "shadow refuses nothing");
            }
            // the poll above checks too: until the shadow version arrived, each of its checks was
            // an enforced hit (one or more under load), then a shadow hit
            DirectiveHits local = a.directives().hits().get(0);
            assertTrue(local.getEnforcedHits() >= 1);
            assertTrue(local.getShadowHits() >= 10);
            // each request checked is recorded as the handler records it (the sidecar counts a
            // gateway's hits only up to the requests it sent in the directive's scope)
            long now = System.currentTimeMillis() * 1000;
            for (long k = 0; k < local.getEnforcedHits() + local.getShadowHits(); k++) {
                a.offer(a.record().applicationId("app-bad").apiName("Orders").apiVersion("v1")
                        .apiContext("/orders/v1").httpMethod(HttpMethods.GET).httpStatus(200).latencyUs(100)
                        .eventTimeUs(now + k));
            }
            waitFor("the hits to reach the sidecar", 30, () -> {
                DirectiveList l = sc.admin().listDirectives(ListDirectivesRequest.getDefaultInstance());
                return l.getHitsList().stream().anyMatch(h -> h.getDirectiveId().equals("d-1")
                        && h.getEnforcedHits() == local.getEnforcedHits() && h.getShadowHits() == local.getShadowHits());
            });

            sc.admin().removeDirective(RemoveDirectiveRequest.newBuilder().setDirectiveId("d-1").setActor("e2e")
                    .build());
            waitFor("the removal to reach the handler", 30, () -> a.directives().activeCount() == 0);
        }
    }
}
