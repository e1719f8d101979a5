package io.vigie.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.testing.FakeSidecar;
import io.vigie.gateway.testing.ManualClock;
import io.vigie.gateway.wire.Column;
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

/** One gateway streaming to two sidecars (a fleet of two), driven by hand with an injected clock. */
class FleetSenderTest {
    private final ManualClock clock = new ManualClock();
    private FakeSidecar healthy;
    private FakeSidecar stalled;

    @BeforeEach
    void start() throws Exception {
        healthy = new FakeSidecar("healthy-" + System.nanoTime());
        stalled = new FakeSidecar("stalled-" + System.nanoTime());
    }

    @AfterEach
    void stop() {
        healthy.close();
        stalled.close();
    }

    private VigieAgent.Builder agent() {
        return VigieAgent.builder().clock(clock).startThread(false).gatewayId("gw-1").channel("main")
                .sidecarAddresses(List.of()).target("healthy", healthy::channel).target("stalled", stalled::channel)
                .flushIntervalMs(5).batchMaxEvents(100).backoffMs(100, 400).reportIntervalMs(1_000)
                .disconnectedHoldMs(600_000);
    }

    private void offer(VigieAgent a, int n, String app) {
        for (int k = 0; k < n; k++) {
            a.offer(a.record().applicationId(app).apiName("Orders").apiVersion("v1").httpStatus(200)
                    .eventTimeUs(clock.wallMicros()));
        }
    }

    private void rounds(VigieAgent a, int rounds, int perRound) {
        for (int r = 0; r < rounds; r++) {
            offer(a, perRound, "app-" + r % 3);
            a.step();
            clock.advanceMillis(5);
            a.step();
        }
    }

    private static GatewayReport lastReport(FakeSidecar.Stream s) {
        return s.received.stream().filter(GatewayMessage::hasReport).map(GatewayMessage::getReport)
                .reduce((x, y) -> y).orElseThrow();
    }

    private static List<EventBatch> batches(FakeSidecar.Stream s) {
        return s.received.stream().filter(GatewayMessage::hasBatch).map(GatewayMessage::getBatch)
                .collect(Collectors.toList());
    }

    /** The stalled sidecar answers again: its stream fails, the sender reconnects and drains its queue. */
    private void comeBack(VigieAgent a) {
        stalled.silent = false;
        stalled.last().fail();
        a.step();
        clock.advanceMillis(100);
        a.step();
        clock.advanceMillis(5);
        a.step();
    }

    @Test
    void everySidecarReceivesEveryEventWithItsOwnDictionary() {
        stalled.silent = false;
        try (VigieAgent a = agent().build()) {
            rounds(a, 10, 7);
            assertEquals(70, healthy.eventsApplied());
            assertEquals(70, stalled.eventsApplied());
            for (FakeSidecar s : List.of(healthy, stalled)) {
                assertNull(s.last().refusal, "each stream decodes by the contract");
                assertEquals(1, batches(s.last()).get(0).getDictionaryBase());
                assertEquals("app-0", s.last().events.get(0).string(Column.APPLICATION_ID));
            }
            assertEquals(70, a.targetCounters(0).sent);
            assertEquals(70, a.targetCounters(1).acked);
            assertEquals(140, a.counters().sent, "the totals count each copy");
            assertEquals(0, a.counters().dropped());
            assertEquals("CONNECTED", a.streamState());
        }
    }

    @Test
    void aStalledSidecarCostsDropsCountedForItAloneAndTheOtherGetsEverything() {
        stalled.silent = true;
        try (VigieAgent a = agent().queueCapacity(8).build()) {
            rounds(a, 10, 5);
            assertEquals(50, healthy.eventsApplied(), "the healthy sidecar is not held back");
            Counters.Snapshot ok = a.targetCounters(0);
            assertEquals(50, ok.sent);
            assertEquals(0, ok.dropped());
            Counters.Snapshot slow = a.targetCounters(1);
            assertEquals(0, slow.sent);
            assertEquals(42, slow.droppedQueueFull, "its own queue (8 slots) is full: the rest is its drop");
            assertEquals(8, slow.queueDepth);
            assertEquals("CONNECTED", a.targetState(0));
            assertEquals("CONNECTING", a.targetState(1));
            assertEquals("CONNECTING", a.streamState(), "the least advanced of the two");

            // the stalled sidecar comes back: it gets what its queue held, and its report says what it lost
            comeBack(a);
            assertEquals(8, stalled.eventsApplied());
            clock.advanceMillis(1_000);
            a.step();
            GatewayReport slowReport = lastReport(stalled.last());
            assertEquals(50, slowReport.getOffered());
            assertEquals(42, slowReport.getDroppedQueueFull());
            assertEquals(8, slowReport.getSent());
            GatewayReport okReport = lastReport(healthy.last());
            assertEquals(50, okReport.getOffered());
            assertEquals(0, okReport.getDroppedQueueFull());
            assertEquals(50, okReport.getSent());
            assertEquals(42, a.counters().droppedQueueFull, "the total adds the targets' drops");
        }
    }

    /** The event numbers of every batch {@code s} received, on all its streams, in order. */
    private static List<Long> numbers(FakeSidecar s) {
        List<Long> out = new java.util.ArrayList<>();
        for (FakeSidecar.Stream st : s.streams) {
            for (EventBatch b : batches(st)) {
                assertTrue(b.getFirstEvent() > 0, "every batch is numbered");
                for (long k = 0; k < b.getCount(); k++) {
                    out.add(b.getFirstEvent() + k);
                }
            }
        }
        return out;
    }

    private static List<Long> range(long from, long to) {
        return java.util.stream.LongStream.rangeClosed(from, to).boxed().collect(Collectors.toList());
    }

    private static String runId(FakeSidecar s) {
        return s.streams.get(0).received.get(0).getHello().getRunId();
    }

    @Test
    void anEventHasOneNumberOnEveryTargetAndABatchHoldsConsecutiveNumbersOnly() {
        stalled.silent = true;
        try (VigieAgent a = agent().queueCapacity(8).build()) {
            rounds(a, 10, 5); // the stalled one's queue keeps events 1..8 and drops 9..50
            comeBack(a);
            offer(a, 3, "app-1"); // 51..53, to both
            a.step();
            clock.advanceMillis(5);
            a.step();
            assertEquals(range(1, 53), numbers(healthy));
            List<Long> gapped = range(1, 8);
            gapped.addAll(range(51, 53));
            assertEquals(gapped, numbers(stalled), "the same numbers, a gap where its queue dropped");
            for (EventBatch b : batches(stalled.last())) {
                assertTrue(b.getFirstEvent() + b.getCount() - 1 <= 8 || b.getFirstEvent() >= 51,
                        "the gap starts a new batch: " + b.getFirstEvent() + "+" + b.getCount());
            }
            assertEquals(runId(healthy), runId(stalled), "one numbering for every target");
            assertEquals(36, runId(healthy).length());
            for (FakeSidecar.Stream st : stalled.streams) {
                assertEquals(runId(stalled), st.received.get(0).getHello().getRunId(), "kept across reconnections");
            }
        }
    }

    @Test
    void aDeadSidecarCostsDisconnectedDropsForItAlone() {
        stalled.close();
        try (VigieAgent a = agent().disconnectedHoldMs(1_000).build()) {
            rounds(a, 4, 5);
            clock.advanceMillis(1_001);
            a.step();
            a.step();
            assertEquals(20, healthy.eventsApplied());
            assertEquals(0, a.targetCounters(0).dropped());
            assertEquals(20, a.targetCounters(1).droppedDisconnected);
            assertEquals("DISCONNECTED", a.targetState(1));
        }
    }

    @Test
    void closingFlushesEveryTarget() {
        stalled.silent = false;
        VigieAgent a = agent().build();
        a.step(); // both streams up
        offer(a, 9, "app-1");
        a.close();
        assertEquals(9, healthy.eventsApplied());
        assertEquals(9, stalled.eventsApplied());
        assertEquals(0, a.counters().dropped());
    }

    @Test
    void directivesFromBothSidecarsAreMergedAndEnforcedOnce() {
        long expiry = clock.wallMicros() + 60_000_000L;
        Directive.Builder limit = Directive.newBuilder().setId("limit-1").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                .setAction(DirectiveAction.DIRECTIVE_ACTION_LIMIT).setApplicationId("app-9").setLimitRequests(2)
                .setLimitPeriodSeconds(3_600).setLimitBurst(2).setExpiresAtUs(expiry).setVersion(4);
        healthy.initialDirectives = DirectiveUpdate.newBuilder().setFull(true).setVersion(10).addUpserts(limit).build();
        stalled.initialDirectives = DirectiveUpdate.newBuilder().setFull(true).setVersion(3).addUpserts(limit)
                .addUpserts(Directive.newBuilder().setId("block-2").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                        .setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK).setApplicationId("app-7")
                        .setExpiresAtUs(expiry).setVersion(3))
                .build();
        try (VigieAgent a = agent().build()) {
            a.step();
            assertEquals(2, a.activeDirectives(), "one limit (sent by both) and one block");
            assertNull(a.check("app-9", "Orders", "v1"));
            assertNull(a.check("app-9", "Orders", "v1"));
            assertNotNull(a.check("app-9", "Orders", "v1"), "one bucket of 2, not one per sidecar");
            assertNotNull(a.check("app-7", "Orders", "v1"));

            // the block is removed on one instance (a higher version): it stops everywhere
            stalled.last().push(SidecarMessage.newBuilder().setDirectives(DirectiveUpdate.newBuilder()
                    .setVersion(5).addRemovals("block-2")).build());
            assertNull(a.check("app-7", "Orders", "v1"));
            assertEquals(1, a.activeDirectives());
        }
    }

    @Test
    void aRepeatedTargetIsRefused() {
        assertThrows(IllegalArgumentException.class,
                () -> VigieAgent.builder().sidecarAddresses(List.of("10.0.0.1:7355", "10.0.0.1:7355")));
    }

    @Test
    void aDropBeforeTheFanOutCountsForEveryTarget() {
        try (VigieAgent a = agent().queueCapacity(4).build()) {
            offer(a, 6, "app-1");
            assertEquals(2, a.counters().droppedQueueFull, "the agent's queue is full before any fan-out");
            assertEquals(2, a.targetCounters(0).droppedQueueFull, "a drop before the fan-out counts for every target");
            assertEquals(2, a.targetCounters(1).droppedQueueFull);
            a.step();
            assertTrue(a.counters().queueDepth <= 8);
        }
    }
}
