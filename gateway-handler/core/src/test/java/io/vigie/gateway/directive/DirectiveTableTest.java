package io.vigie.gateway.directive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.testing.ManualClock;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveHits;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.DirectiveUpdate;
import java.lang.management.ManagementFactory;
import org.junit.jupiter.api.Test;

class DirectiveTableTest {
    private final ManualClock clock = new ManualClock();

    private Directive.Builder block(String id, DirectiveMode mode) {
        return Directive.newBuilder().setId(id).setMode(mode).setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK)
                .setExpiresAtUs(clock.wallMicros() + 60_000_000L);
    }

    private Directive.Builder limit(String id, DirectiveMode mode, int requests, int periodSeconds, int burst) {
        return Directive.newBuilder().setId(id).setMode(mode).setAction(DirectiveAction.DIRECTIVE_ACTION_LIMIT)
                .setLimitRequests(requests).setLimitPeriodSeconds(periodSeconds).setLimitBurst(burst)
                .setExpiresAtUs(clock.wallMicros() + 3_600_000_000L);
    }

    private static DirectiveUpdate full(long version, Directive.Builder... ds) {
        DirectiveUpdate.Builder u = DirectiveUpdate.newBuilder().setVersion(version).setFull(true);
        for (Directive.Builder d : ds) {
            u.addUpserts(d);
        }
        return u.build();
    }

    private static DirectiveHits hits(DirectiveTable t, String id) {
        return t.hits().stream().filter(h -> h.getDirectiveId().equals(id)).findFirst().orElseThrow();
    }

    @Test
    void anEnforcedBlockRefusesOnlyItsScope() {
        DirectiveTable t = new DirectiveTable(clock, "main");
        t.apply(full(1, block("b1", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")
                .setErrorCode(900805).setReason("retry storm")));
        Rule r = t.check("app-1", "Orders", "v1");
        assertNotNull(r);
        assertEquals(900805, r.errorCode());
        assertEquals("{\"code\":\"900805\",\"message\":\"Message blocked\",\"description\":"
                + "\"You have been blocked from accessing the resource (vigie directive b1: retry storm)\"}", r.faultJson());
        assertEquals(403, r.httpStatus());
        assertNull(t.check("app-2", "Orders", "v1"));
        assertNull(t.check(null, "Orders", "v1"));
        assertEquals(1, hits(t, "b1").getEnforcedHits());
    }

    @Test
    void aShadowDirectiveCountsButRefusesNothing() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(1, block("s1", DirectiveMode.DIRECTIVE_MODE_SHADOW).setApiName("Orders")));
        for (int k = 0; k < 5; k++) {
            assertNull(t.check("app-1", "Orders", "v1"));
        }
        assertNull(t.check("app-1", "Payments", "v1"));
        DirectiveHits h = hits(t, "s1");
        assertEquals(5, h.getShadowHits());
        assertEquals(0, h.getEnforcedHits());
    }

    @Test
    void scopesMatchOnEveryFieldTheyName() {
        DirectiveTable t = new DirectiveTable(clock, "sale");
        t.apply(full(1,
                block("ver", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApiName("Orders").setApiVersion("v2"),
                block("both", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-9").setApiName("Pay"),
                block("other-channel", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")
                        .setChannel("main"),
                block("this-channel", DirectiveMode.DIRECTIVE_MODE_SHADOW).setChannel("sale")));
        assertNull(t.check("app-1", "Orders", "v1"));
        assertEquals("ver", t.check("app-1", "Orders", "v2").id());
        assertNull(t.check("app-9", "Orders", "v1"));
        assertEquals("both", t.check("app-9", "Pay", "v1").id());
        assertNull(t.check("app-8", "Pay", "v1"));
        // a channel-wide directive sees every request of its channel; the other channel's sees none
        assertEquals(5, hits(t, "this-channel").getShadowHits());
        assertTrue(t.hits().stream().noneMatch(h -> h.getDirectiveId().equals("other-channel")));
        assertEquals(3, t.activeCount());
    }

    @Test
    void directivesExpireByThemselvesWithoutTheSidecar() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(1, block("b", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApiName("Orders")
                .setExpiresAtUs(clock.wallMicros() + 10_000_000L)));
        assertNotNull(t.check("a", "Orders", "v1"));
        clock.advanceMillis(9_999);
        assertNotNull(t.check("a", "Orders", "v1"));
        clock.advanceMillis(1);
        assertNull(t.check("a", "Orders", "v1"), "refused after its expiry");
        assertEquals(0, t.activeCount());
        assertEquals(1, t.expire());
        assertEquals(0, t.expire());
    }

    @Test
    void deltasUpsertAndRemoveAndKeepUnchangedBuckets() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(1, limit("l", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 2, 60, 0).setApiName("Orders")));
        assertNull(t.check("a", "Orders", "v"));
        assertNull(t.check("a", "Orders", "v"));
        assertNotNull(t.check("a", "Orders", "v"));
        // an unrelated upsert keeps the limit's bucket (still empty)
        t.apply(DirectiveUpdate.newBuilder().setVersion(2)
                .addUpserts(block("b", DirectiveMode.DIRECTIVE_MODE_SHADOW).setApiName("Pay")).build());
        assertNotNull(t.check("a", "Orders", "v"));
        t.apply(DirectiveUpdate.newBuilder().setVersion(3).addRemovals("l").build());
        assertNull(t.check("a", "Orders", "v"));
        assertEquals(3, t.version());
        assertEquals(1, t.activeCount());
    }

    @Test
    void malformedDirectivesAreIgnoredAndCounted() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(1,
                limit("no-period", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 5, 0, 0).setApiName("A"),
                block("no-expiry", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApiName("A").setExpiresAtUs(0),
                block("no-mode", DirectiveMode.DIRECTIVE_MODE_UNSPECIFIED).setApiName("A"),
                block("no-scope", DirectiveMode.DIRECTIVE_MODE_ENFORCE),
                block("version-alone", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApiVersion("v")));
        assertEquals(5, t.rejectedDirectives());
        assertNull(t.check("x", "A", "v"));
    }

    @Test
    void checkIsAllocationFreeWithManyDirectives() {
        DirectiveTable t = new DirectiveTable(clock, "");
        DirectiveUpdate.Builder u = DirectiveUpdate.newBuilder().setFull(true).setVersion(1);
        for (int k = 0; k < 5_000; k++) {
            u.addUpserts(block("d" + k, DirectiveMode.DIRECTIVE_MODE_SHADOW).setApplicationId("app-" + k));
            u.addUpserts(limit("l" + k, DirectiveMode.DIRECTIVE_MODE_ENFORCE, 1_000_000, 1, 0).setApiName("api-" + k)
                    .setApiVersion("v1"));
        }
        t.apply(u.build());
        String app = "app-4321";
        String api = "api-17";
        for (int k = 0; k < 50_000; k++) {
            t.check(app, api, "v1");
        }
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().getId();
        long before = mx.getThreadAllocatedBytes(tid);
        for (int k = 0; k < 10_000; k++) {
            assertNull(t.check(app, api, "v1"));
        }
        long allocated = mx.getThreadAllocatedBytes(tid) - before;
        assertTrue(allocated < 1024, "10,000 checks allocated " + allocated + " bytes");
        assertEquals(60_000, hits(t, "d4321").getShadowHits());
    }

    @Test
    void anEnforcedRefusalTakesNoTokenFromLaterLimits() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(1, block("b", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("a"),
                limit("l", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 1, 60, 0).setApplicationId("a")));
        Rule first = t.check("a", "X", "v");
        assertNotNull(first);
        assertSame(first, t.check("a", "X", "v"));
        assertEquals(0, hits(t, "l").getPassed() + hits(t, "l").getEnforcedHits());
    }

    private static final int TWO_TO_31 = Integer.MIN_VALUE; // 2^31 as a uint32 on the wire
    private static final int TWO_TO_32_MINUS_1 = -1;        // 2^32 - 1 as a uint32 on the wire

    @Test
    void uint32RequestsAndBurstsAtTheTopOfTheirRangeApply() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(1,
                limit("r31", DirectiveMode.DIRECTIVE_MODE_ENFORCE, TWO_TO_31, 1, 0).setApiName("A"),
                limit("r32", DirectiveMode.DIRECTIVE_MODE_ENFORCE, TWO_TO_32_MINUS_1, 1, 0).setApiName("B"),
                limit("b32", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 1, 86_400, TWO_TO_32_MINUS_1).setApiName("C")));
        assertEquals(0, t.rejectedDirectives());
        assertEquals(3, t.activeCount());
        for (int k = 0; k < 1_000; k++) {
            assertNull(t.check("x", "A", "v"));
            assertNull(t.check("x", "B", "v"));
            assertNull(t.check("x", "C", "v"));
        }
    }

    @Test
    void periodsBeyondTheSupportedRangeAreRejectedOneByOneAndTheRestApplies() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(4,
                limit("p31", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 100, TWO_TO_31, 0).setApiName("A"),
                limit("p32", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 100, TWO_TO_32_MINUS_1, 0).setApiName("A"),
                block("ok", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApiName("B")));
        assertEquals(2, t.rejectedDirectives());
        assertEquals(4, t.version());
        assertNotNull(t.check("x", "B", "v"));
        assertNull(t.check("x", "A", "v"));
        assertEquals(2, t.rejections().size());
        assertEquals("p31", t.rejections().get(0).getDirectiveId());
        assertEquals(4, t.rejections().get(0).getUpdateVersion());
        assertEquals("limit_period_seconds 2147483648 is outside 1..315576000", t.rejections().get(0).getReason());
        assertEquals("limit_period_seconds 4294967295 is outside 1..315576000", t.rejections().get(1).getReason());
    }

    @Test
    void aDailyLimitWithAHugeBurstLetsTheBurstThrough() {
        // 100 a day, burst 1e8: interval x (burst - 1) overflows a long without saturation
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(1, limit("daily", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 100, 86_400, 100_000_000)
                .setApiName("A")));
        assertEquals(0, t.rejectedDirectives());
        for (int k = 0; k < 10_000; k++) {
            assertNull(t.check("x", "A", "v"), "request " + k);
        }
        assertEquals(10_000, hits(t, "daily").getPassed());
    }

    @Test
    void aRemovalAlwaysAppliesAfterABadDirectiveWasReceived() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(1, block("enforced", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApiName("Orders"),
                limit("bad", DirectiveMode.DIRECTIVE_MODE_ENFORCE, TWO_TO_31, TWO_TO_31, 0).setApiName("Pay")));
        assertNotNull(t.check("x", "Orders", "v"));
        // a delta with another bad upsert, then a delta removing the block
        t.apply(DirectiveUpdate.newBuilder().setVersion(2)
                .addUpserts(limit("bad2", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 5, TWO_TO_32_MINUS_1, 0)
                        .setApiName("Pay")).build());
        assertNotNull(t.check("x", "Orders", "v"));
        t.apply(DirectiveUpdate.newBuilder().setVersion(3).addRemovals("enforced").build());
        assertNull(t.check("x", "Orders", "v"), "the removed ENFORCE block no longer refuses");
        assertEquals(3, t.version());
        // a removal in the same update as a bad upsert applies too
        t.apply(full(4, block("again", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApiName("Orders")));
        assertNotNull(t.check("x", "Orders", "v"));
        t.apply(DirectiveUpdate.newBuilder().setVersion(5).addRemovals("again")
                .addUpserts(limit("bad3", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 1, TWO_TO_31, 0).setApiName("Pay"))
                .build());
        assertNull(t.check("x", "Orders", "v"));
        assertEquals(5, t.version());
        assertEquals(3, t.rejectedDirectives());
    }

    @Test
    void aRejectedReplacementRemovesTheOlderVersionAndAValidOneClearsTheRejection() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(full(1, limit("l", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 1, 60, 0).setApiName("A")));
        assertNull(t.check("x", "A", "v"));
        assertNotNull(t.check("x", "A", "v"));
        t.apply(DirectiveUpdate.newBuilder().setVersion(2)
                .addUpserts(limit("l", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 1, TWO_TO_31, 0).setApiName("A")).build());
        assertNull(t.check("x", "A", "v"), "no directive of that id until a valid upsert comes");
        assertEquals(1, t.rejections().size());
        t.apply(DirectiveUpdate.newBuilder().setVersion(3)
                .addUpserts(limit("l", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 1, 60, 0).setApiName("A")).build());
        assertEquals(0, t.rejections().size());
        assertNull(t.check("x", "A", "v"));
        assertNotNull(t.check("x", "A", "v"));
    }

    // ---- several sidecars (a fleet): the tables are merged ----

    private static DirectiveUpdate delta(long version, Directive.Builder... ds) {
        DirectiveUpdate.Builder u = DirectiveUpdate.newBuilder().setVersion(version);
        for (Directive.Builder d : ds) {
            u.addUpserts(d);
        }
        return u.build();
    }

    private static DirectiveUpdate removal(long version, String id) {
        return DirectiveUpdate.newBuilder().setVersion(version).addRemovals(id).build();
    }

    @Test
    void betweenSidecarsTheHighestVersionOfAnIdWins() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(0, full(5, block("d", DirectiveMode.DIRECTIVE_MODE_SHADOW).setApplicationId("app-1")));
        t.apply(1, full(7, block("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")));
        assertNotNull(t.check("app-1", "Orders", "v1"), "sidecar 1's version 7 (ENFORCE) wins");
        t.apply(0, delta(6, block("d", DirectiveMode.DIRECTIVE_MODE_SHADOW).setApplicationId("app-1")));
        assertNotNull(t.check("app-1", "Orders", "v1"), "a later but lower version does not win");
        t.apply(0, delta(8, block("d", DirectiveMode.DIRECTIVE_MODE_SHADOW).setApplicationId("app-1")));
        assertNull(t.check("app-1", "Orders", "v1"), "version 8 wins");
        assertEquals(1, t.activeCount());
    }

    @Test
    void theDirectivesOwnVersionWinsOverItsUpdatesVersion() {
        DirectiveTable t = new DirectiveTable(clock, "");
        // a full resend at table version 100 carries a directive last put at version 5
        t.apply(0, full(100, block("d", DirectiveMode.DIRECTIVE_MODE_SHADOW).setApplicationId("app-1").setVersion(5)));
        t.apply(1, full(7, block("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1").setVersion(7)));
        assertNotNull(t.check("app-1", "Orders", "v1"));
    }

    @Test
    void aRemovalOfHigherVersionOnOneSidecarWinsOverAnOtherSidecarsCopy() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(0, full(5, block("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")));
        t.apply(1, full(5, block("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")));
        t.apply(1, removal(9, "d"));
        assertNull(t.check("app-1", "Orders", "v1"), "removed on sidecar 1 at 9, sidecar 0 still has it at 5");
        assertEquals(0, t.activeCount());
        t.apply(0, full(6, block("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")));
        assertNull(t.check("app-1", "Orders", "v1"), "a resend of the older copy does not bring it back");
        t.apply(0, delta(10, block("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")));
        assertNotNull(t.check("app-1", "Orders", "v1"), "put again at a higher version: in force");
    }

    @Test
    void aRemovalOfLowerVersionDoesNotRemoveAnotherSidecarsNewerDirective() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(0, full(12, block("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")));
        t.apply(1, removal(3, "d"));
        assertNotNull(t.check("app-1", "Orders", "v1"));
    }

    @Test
    void aDirectiveSentByTwoSidecarsIsEnforcedOnceWithOneBucket() {
        DirectiveTable t = new DirectiveTable(clock, "");
        Directive.Builder d = limit("l", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 3, 3_600, 3).setApplicationId("app-1")
                .setVersion(4);
        t.apply(0, full(10, d));
        assertNull(t.check("app-1", "Orders", "v1"));
        t.apply(1, full(2, d)); // the same directive from the other instance keeps the bucket
        assertNull(t.check("app-1", "Orders", "v1"));
        assertNull(t.check("app-1", "Orders", "v1"));
        assertNotNull(t.check("app-1", "Orders", "v1"), "3 per hour across both sidecars' copies");
        DirectiveHits h = hits(t, "l");
        assertEquals(3, h.getPassed());
        assertEquals(1, h.getEnforcedHits());
        assertEquals(1, t.activeCount());
    }

    @Test
    void aFullUpdateOfOneSidecarLeavesTheOthersDirectives() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(0, full(1, block("a", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-a")));
        t.apply(1, full(1, block("b", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-b")));
        assertEquals(2, t.activeCount());
        t.apply(0, full(2));
        assertNull(t.check("app-a", "Orders", "v1"));
        assertNotNull(t.check("app-b", "Orders", "v1"));
    }

    @Test
    void aRejectedUpsertOnOneSidecarRemovesOnlyThatSidecarsOlderCopy() {
        DirectiveTable t = new DirectiveTable(clock, "");
        t.apply(0, full(5, block("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")));
        t.apply(1, full(8, block("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE).setApplicationId("app-1")));
        t.apply(0, delta(6, limit("d", DirectiveMode.DIRECTIVE_MODE_ENFORCE, 0, 0, 0).setApplicationId("app-1")));
        assertEquals(1, t.rejectedDirectives());
        assertNotNull(t.check("app-1", "Orders", "v1"), "sidecar 1's version 8 still holds");
    }
}
