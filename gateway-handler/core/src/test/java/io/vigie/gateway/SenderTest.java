package io.vigie.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.testing.FakeSidecar;
import io.vigie.gateway.testing.ManualClock;
import io.vigie.gateway.wire.Column;
import io.vigie.wire.v1.Ack;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.DirectiveUpdate;
import io.vigie.wire.v1.EventBatch;
import io.vigie.wire.v1.GatewayMessage;
import io.vigie.wire.v1.GatewayReport;
import io.vigie.wire.v1.SidecarMessage;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The sender against an in-process fake sidecar, driven step by step with an injected clock. */
class SenderTest {
    private final ManualClock clock = new ManualClock();
    private FakeSidecar sidecar;

    @BeforeEach
    void start() throws Exception {
        sidecar = new FakeSidecar("sidecar-" + System.nanoTime());
    }

    @AfterEach
    void stop() {
        sidecar.close();
    }

    private VigieAgent.Builder agent() {
        return VigieAgent.builder().clock(clock).startThread(false).grpcChannel(sidecar::channel).gatewayId("gw-1")
                .channel("main").flushIntervalMs(5).batchMaxEvents(100).backoffMs(100, 400).reportIntervalMs(1_000);
    }

    private static void offer(VigieAgent a, int n, String app) {
        for (int k = 0; k < n; k++) {
            a.offer(a.record().applicationId(app).apiName("Orders").apiVersion("v1").httpStatus(200)
                    .eventTimeUs(1_000 + k));
        }
    }

    private static List<EventBatch> batches(FakeSidecar.Stream s) {
        return s.received.stream().filter(GatewayMessage::hasBatch).map(GatewayMessage::getBatch)
                .collect(Collectors.toList());
    }

    @Test
    void helloFirstThenBatchesFlushedOnTime() {
        try (VigieAgent a = agent().build()) {
            offer(a, 3, "app-1");
            a.step();
            FakeSidecar.Stream s = sidecar.last();
            assertTrue(s.received.get(0).hasHello());
            assertEquals("gw-1", s.received.get(0).getHello().getGatewayId());
            assertEquals("main", s.received.get(0).getHello().getChannel());
            assertEquals(1, s.received.get(0).getHello().getProtocolVersion());
            assertEquals(clock.wallMicros(), s.received.get(0).getHello().getClockUs(), "the gateway's clock at sending");
            assertTrue(batches(s).isEmpty(), "a partial batch waits for the flush interval");
            clock.advanceMillis(4);
            a.step();
            assertTrue(batches(s).isEmpty());
            clock.advanceMillis(1);
            a.step();
            assertEquals(1, batches(s).size());
            assertEquals(3, s.events.size());
            assertEquals(3, a.counters().sent);
            assertEquals(3, a.counters().acked);
            assertEquals("CONNECTED", a.streamState());
        }
    }

    @Test
    void aFullBatchIsSentWithoutWaiting() {
        try (VigieAgent a = agent().batchMaxEvents(2).build()) {
            offer(a, 5, "app-1");
            a.step();
            a.step();
            a.step();
            List<EventBatch> bs = batches(sidecar.last());
            assertEquals(List.of(2, 2), bs.stream().map(EventBatch::getCount).collect(Collectors.toList()));
            clock.advanceMillis(5);
            a.step();
            assertEquals(5, sidecar.last().events.size());
        }
    }

    @Test
    void theSidecarsBatchLimitWins() {
        sidecar.maxBatchEvents = 3;
        try (VigieAgent a = agent().build()) {
            offer(a, 7, "app-1");
            for (int k = 0; k < 5; k++) {
                a.step();
            }
            clock.advanceMillis(5);
            a.step();
            assertEquals(List.of(3, 3, 1),
                    batches(sidecar.last()).stream().map(EventBatch::getCount).collect(Collectors.toList()));
        }
    }

    @Test
    void everyOfferedEventIsAccountedFor() {
        try (VigieAgent a = agent().build()) {
            for (int round = 0; round < 20; round++) {
                offer(a, 37, "app-" + round % 3);
                a.step();
                clock.advanceMillis(5);
                a.step();
            }
            Counters.Snapshot c = a.counters();
            assertEquals(740, c.offered);
            assertEquals(0, c.dropped());
            assertEquals(740, sidecar.eventsApplied());
            assertEquals(740, c.sent);
            assertEquals(740, c.acked);
        }
    }

    @Test
    void theDictionaryIsResentAfterAReconnect() {
        try (VigieAgent a = agent().build()) {
            offer(a, 2, "app-1");
            a.step();
            clock.advanceMillis(5);
            a.step();
            EventBatch first = batches(sidecar.streams.get(0)).get(0);
            assertEquals(List.of("app-1", "Orders", "v1"), first.getDictionaryAdditionsList());

            sidecar.streams.get(0).fail();
            a.step(); // notices the failure, backs off
            assertEquals("DISCONNECTED", a.streamState());
            clock.advanceMillis(99);
            a.step();
            assertEquals(1, sidecar.streams.size(), "no attempt before the backoff");
            clock.advanceMillis(1);
            offer(a, 2, "app-1");
            a.step();
            assertEquals(2, sidecar.streams.size());
            clock.advanceMillis(5);
            a.step();
            EventBatch again = batches(sidecar.streams.get(1)).get(0);
            assertEquals(1, again.getSequence());
            assertEquals(1, first.getFirstEvent(), "one target: the sender numbers what it takes");
            assertEquals(3, again.getFirstEvent(), "the numbering goes on across streams (sequence does not)");
            assertEquals(sidecar.streams.get(0).received.get(0).getHello().getRunId(),
                    sidecar.streams.get(1).received.get(0).getHello().getRunId());
            assertEquals(1, again.getDictionaryBase());
            assertEquals(List.of("app-1", "Orders", "v1"), again.getDictionaryAdditionsList());
            assertEquals(1, a.counters().reconnects);
            assertNull(sidecar.streams.get(1).refusal);
            assertEquals("app-1", sidecar.streams.get(1).events.get(0).string(Column.APPLICATION_ID));
        }
    }

    @Test
    void backoffDoublesUpToItsCapAndResetsOnceConnected() throws Exception {
        String name = "restartable-" + System.nanoTime();
        FakeSidecar[] current = {new FakeSidecar(name)};
        current[0].close();
        try (VigieAgent a = agent().grpcChannel(() -> io.grpc.inprocess.InProcessChannelBuilder.forName(name)
                .directExecutor().build()).build()) {
            a.step(); // first attempt: nobody there
            a.step(); // failure noticed
            for (long w : new long[] {100, 200, 400, 400}) {
                long before = a.counters().reconnects;
                clock.advanceMillis(w - 1);
                a.step();
                assertEquals(before, a.counters().reconnects, "too early after " + (w - 1) + " ms");
                clock.advanceMillis(1);
                a.step();
                assertEquals(before + 1, a.counters().reconnects, "retried after " + w + " ms");
                a.step();
            }
            current[0] = new FakeSidecar(name);
            clock.advanceMillis(400);
            a.step();
            assertEquals("CONNECTED", a.streamState());
            current[0].last().fail();
            a.step();
            long before = a.counters().reconnects;
            clock.advanceMillis(100);
            a.step();
            assertEquals(before + 1, a.counters().reconnects, "the backoff restarted at 100 ms after a Welcome");
            assertEquals(2, current[0].streams.size());
        } finally {
            current[0].close();
        }
    }

    @Test
    void eachStreamIsCompletedExactlyOnce() {
        VigieAgent a = agent().build();
        offer(a, 3, "app-1");
        a.step();
        sidecar.last().fail();
        a.step();
        clock.advanceMillis(100);
        a.step();
        offer(a, 3, "app-1");
        a.step();
        a.close();
        a.close();
        FakeSidecar.Stream closed = sidecar.streams.get(1);
        assertEquals(1, closed.completions.get() + closed.errors.get());
        assertEquals(1, closed.completions.get(), "a clean close half-closes the stream");
        assertEquals(3, closed.events.size(), "close sends what is queued");
        for (FakeSidecar.Stream s : sidecar.streams) {
            assertTrue(s.completions.get() + s.errors.get() <= 1);
        }
        GatewayMessage last = closed.received.get(closed.received.size() - 1);
        assertTrue(last.hasReport(), "a final report before completing");
    }

    @Test
    void eventsSentButNeverAckedAreCountedLostWhenTheStreamFails() {
        sidecar.ack = false;
        try (VigieAgent a = agent().build()) {
            offer(a, 10, "app-1");
            a.step();
            clock.advanceMillis(5);
            a.step();
            assertEquals(10, a.counters().sent);
            sidecar.last().fail();
            a.step();
            a.step();
            assertEquals(10, a.counters().droppedSendFailed);
        }
    }

    @Test
    void anAckAfterTheDrainTimeoutMovesItsEventsBackFromDroppedToAcked() {
        sidecar.ack = false;
        sidecar.holdCompletion = true;
        sidecar.maxDictionaryEntries = 20;
        try (VigieAgent a = agent().build()) {
            offer(a, 1, "app-0");
            a.step();
            clock.advanceMillis(5);
            a.step();
            FakeSidecar.Stream first = sidecar.last();
            for (int k = 1; k < 30; k++) { // new strings: the dictionary fills, a new stream starts
                offer(a, 1, "app-" + k);
            }
            for (int k = 0; k < 20; k++) {
                a.step();
                clock.advanceMillis(5);
            }
            assertTrue(sidecar.streams.size() > 1, "the sender started a fresh stream");
            long sentOnFirst = first.events.size();
            assertTrue(sentOnFirst > 0);
            clock.advanceMillis(StreamSender.DRAIN_TIMEOUT_NANOS / 1_000_000 + 1_000);
            a.step();
            a.step();
            long droppedBefore = a.counters().droppedSendFailed;
            assertTrue(droppedBefore >= sentOnFirst, "unacked events counted lost at the drain timeout");
            first.push(SidecarMessage.newBuilder().setAck(Ack.newBuilder().setEventsApplied(sentOnFirst)).build());
            Counters.Snapshot c = a.counters();
            assertEquals(sentOnFirst, c.acked, "the late ack counts");
            assertEquals(droppedBefore - sentOnFirst, c.droppedSendFailed, "and its events are no longer dropped");
        }
    }

    @Test
    void whileDisconnectedOldEventsAreDroppedAndCounted() {
        sidecar.close();
        try (VigieAgent a = agent().disconnectedHoldMs(1_000).build()) {
            offer(a, 10, "app-1"); // event times long past
            a.step();
            a.step();
            Counters.Snapshot c = a.counters();
            assertEquals(10, c.droppedDisconnected);
            assertEquals(0, c.queueDepth);
            a.offer(a.record().apiName("x").eventTimeUs(clock.wallMicros()));
            a.step();
            assertEquals(1, a.counters().queueDepth, "a fresh event is held for a reconnect");
            clock.advanceMillis(1_001);
            a.step();
            assertEquals(11, a.counters().droppedDisconnected);
        }
    }

    @Test
    void aSmallSidecarDictionaryMakesTheSenderStartFreshStreams() {
        sidecar.maxDictionaryEntries = 20;
        try (VigieAgent a = agent().build()) {
            for (int k = 0; k < 30; k++) {
                offer(a, 1, "app-" + k);
            }
            for (int k = 0; k < 50 && sidecar.eventsApplied() < 30; k++) {
                a.step();
                clock.advanceMillis(5);
            }
            assertEquals(30, sidecar.eventsApplied());
            assertTrue(sidecar.streams.size() > 2);
            for (FakeSidecar.Stream s : sidecar.streams) {
                assertNull(s.refusal);
                assertTrue(s.decoder.dictionarySize() <= 20);
            }
            assertEquals(0, a.counters().dropped());
        }
    }

    @Test
    void directivesFromTheStreamAreEnforcedAndReported() {
        sidecar.initialDirectives = DirectiveUpdate.newBuilder().setFull(true).setVersion(7)
                .addUpserts(Directive.newBuilder().setId("block-1").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                        .setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK).setApplicationId("bad-app")
                        .setExpiresAtUs(clock.wallMicros() + 60_000_000L))
                .build();
        try (VigieAgent a = agent().build()) {
            assertNull(a.check("bad-app", "Orders", "v1"));
            a.step();
            assertEquals(7, a.directives().version());
            assertNotNull(a.check("bad-app", "Orders", "v1"));
            assertNull(a.check("good-app", "Orders", "v1"));
            clock.advanceMillis(1_000);
            a.step();
            List<GatewayReport> reports = sidecar.last().received.stream().filter(GatewayMessage::hasReport)
                    .map(GatewayMessage::getReport).collect(Collectors.toList());
            assertEquals(1, reports.size());
            assertEquals("block-1", reports.get(0).getDirectiveHits(0).getDirectiveId());
            assertEquals(1, reports.get(0).getDirectiveHits(0).getEnforcedHits());
        }
    }

    @Test
    void withEnforcementSwitchedOffNothingIsRefused() {
        sidecar.initialDirectives = DirectiveUpdate.newBuilder().setFull(true).setVersion(1)
                .addUpserts(Directive.newBuilder().setId("b").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                        .setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK).setApiName("Orders")
                        .setExpiresAtUs(clock.wallMicros() + 60_000_000L))
                .build();
        try (VigieAgent a = agent().enforcement(false).build()) {
            a.step();
            assertNull(a.check("x", "Orders", "v1"));
        }
    }

    @Test
    void aRejectedDirectiveIsCountedInJmxAndReportedToTheSidecar() throws Exception {
        sidecar.initialDirectives = DirectiveUpdate.newBuilder().setFull(true).setVersion(9)
                .addUpserts(Directive.newBuilder().setId("good").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                        .setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK).setApplicationId("bad-app")
                        .setExpiresAtUs(clock.wallMicros() + 60_000_000L))
                .addUpserts(Directive.newBuilder().setId("too-long").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                        .setAction(DirectiveAction.DIRECTIVE_ACTION_LIMIT).setApiName("Orders")
                        .setLimitRequests(100).setLimitPeriodSeconds(Integer.MIN_VALUE) // 2^31 unsigned
                        .setExpiresAtUs(clock.wallMicros() + 60_000_000L))
                .build();
        javax.management.MBeanServer server = java.lang.management.ManagementFactory.getPlatformMBeanServer();
        javax.management.ObjectName name = new javax.management.ObjectName(
                "io.vigie:type=GatewayHandler,gateway=\"gw-rejects\"");
        try (VigieAgent a = agent().gatewayId("gw-rejects").jmx(true).build()) {
            a.step();
            assertEquals(9, a.directives().version());
            assertNotNull(a.check("bad-app", "Orders", "v1"), "the valid directive of the update applied");
            assertEquals(1, a.counters().directivesRejected);
            assertEquals(1L, server.getAttribute(name, "DirectivesRejected"));
            String[] lines = (String[]) server.getAttribute(name, "RejectedDirectives");
            assertEquals(1, lines.length);
            assertEquals("too-long update=9 limit_period_seconds 2147483648 is outside 1..315576000", lines[0]);
            clock.advanceMillis(1_000);
            a.step();
            GatewayReport report = sidecar.last().received.stream().filter(GatewayMessage::hasReport)
                    .map(GatewayMessage::getReport).reduce((x, y) -> y).orElseThrow();
            assertEquals(1, report.getDirectivesRejected());
            assertEquals(1, report.getRejectedDirectivesCount());
            assertEquals("too-long", report.getRejectedDirectives(0).getDirectiveId());
            assertEquals(9, report.getRejectedDirectives(0).getUpdateVersion());
            assertEquals("limit_period_seconds 2147483648 is outside 1..315576000",
                    report.getRejectedDirectives(0).getReason());
        }
    }

    @Test
    void aRejectedLocalQuotaIsReportedToTheSidecar() throws Exception {
        sidecar.initialDirectives = DirectiveUpdate.newBuilder().setFull(true).setVersion(3)
                .addUpserts(Directive.newBuilder().setId("l1").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                        .setAction(DirectiveAction.DIRECTIVE_ACTION_LIMIT).setApplicationId("app-q")
                        .setLimitRequests(100).setLimitPeriodSeconds(60)
                        .setExpiresAtUs(clock.wallMicros() + 60_000_000L))
                .addQuotas(io.vigie.wire.v1.LocalQuota.newBuilder().setDirectiveId("l1").setSharePpm(0)
                        .setEpochUs(clock.wallMicros()))
                .addQuotas(io.vigie.wire.v1.LocalQuota.newBuilder().setDirectiveId("l1").setSharePpm(250_000)
                        .setEpochUs(0))
                .build();
        try (VigieAgent a = agent().gatewayId("gw-quotas").build()) {
            a.step();
            assertEquals(3, a.directives().version());
            assertEquals(2, a.directives().rejectedQuotas());
            clock.advanceMillis(1_000);
            a.step();
            GatewayReport report = sidecar.last().received.stream().filter(GatewayMessage::hasReport)
                    .map(GatewayMessage::getReport).reduce((x, y) -> y).orElseThrow();
            assertEquals(2, report.getQuotasRejected());
            assertEquals("l1: epoch_us 0 is not a time", report.getLastQuotaRejection());
            assertEquals(0, report.getDirectivesRejected(), "the directive itself applied");
        }
    }

    @Test
    void theReportCarriesTheUnmatchedRequestsByPrefix() throws Exception {
        javax.management.MBeanServer server = java.lang.management.ManagementFactory.getPlatformMBeanServer();
        javax.management.ObjectName name = new javax.management.ObjectName(
                "io.vigie:type=GatewayHandler,gateway=\"gw-unmatched\"");
        try (VigieAgent a = agent().gatewayId("gw-unmatched").jmx(true).build()) {
            a.countUnmatched("/wp-admin/setup.php");
            a.countUnmatched("/wp-admin/");
            a.countUnmatched(null);
            a.step();
            clock.advanceMillis(1_000);
            a.step();
            GatewayReport report = sidecar.last().received.stream().filter(GatewayMessage::hasReport)
                    .map(GatewayMessage::getReport).reduce((x, y) -> y).orElseThrow();
            assertEquals(3, report.getUnmatchedRequests());
            java.util.Map<String, Long> byPrefix = new java.util.HashMap<>();
            report.getUnmatchedPrefixesList().forEach(p -> byPrefix.put(p.getPrefix(), p.getRequests()));
            assertEquals(java.util.Map.of("/wp-admin", 2L, "/", 1L), byPrefix);
            assertEquals(byPrefix.size(), a.unmatchedPrefixes().size());
            java.util.List<String> jmx = java.util.Arrays.asList((String[]) server.getAttribute(name, "UnmatchedPrefixes"));
            assertEquals(2, jmx.size());
            assertTrue(jmx.contains("/wp-admin=2") && jmx.contains("/=1"), jmx.toString());
        }
    }
}
