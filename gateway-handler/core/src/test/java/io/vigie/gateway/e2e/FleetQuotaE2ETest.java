package io.vigie.gateway.e2e;

import static io.vigie.gateway.testing.SidecarProcess.waitFor;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.DirectiveTable;
import io.vigie.gateway.directive.TokenBucket;
import io.vigie.gateway.testing.ManualClock;
import io.vigie.gateway.testing.SidecarProcess;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.DirectiveUpdate;
import io.vigie.wire.v1.PutDirectiveRequest;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A LIMIT is a fleet-wide budget: four handler cores (the gateways), each streaming to two real
 * {@code vigie serve} processes (a fleet of two), behind a skewed load balancer (55/25/15/5 %,
 * then 5/15/25/55 %) offering three times the budget; one instance is killed during the second
 * split. Each instance gives each gateway its share; the gateways apply them with their own
 * buckets. The fleet's total admitted stays within
 * the documented tolerance of the budget (docs/directives.md, "A LIMIT is a fleet-wide budget"),
 * where a budget per gateway (four tables holding the same LIMIT without quotas, offered the
 * same requests) lets 2.3 times the budget through.
 *
 * <p>The gateways' buckets run on a manual clock the test moves by 10 ms steps (paced to real
 * time so that the instances' re-balancing, on real time, sees the traffic as it comes): the
 * budget is counted on that clock, and no assertion depends on how fast the machine is. The
 * instances re-balance every 0.5 s on a 2 s demand window (the defaults are 5 s and 30 s).
 */
@Tag("e2e")
class FleetQuotaE2ETest {
    /** The documented tolerance: the fleet admits at most the budget plus 5 %. */
    static final double TOLERANCE = 0.05;

    static final int LIMIT_REQUESTS = 6_000; // per minute: 100 per second
    static final int LIMIT_BURST = 50;
    static final int OFFERED_PER_STEP = 3; // every 10 ms: 300 per second, 3 x the budget
    static final int STEP_MS = 10;
    static final int PHASE_STEPS = 1_500; // 15 s of traffic per load-balancer split

    @TempDir
    Path tmp;

    @BeforeAll
    static void needsTheCli() {
        Assumptions.assumeTrue(SidecarProcess.cli() != null,
                "set -Dvigie.cli=/path/to/.venv/bin/vigie (make test-java does) to run the end-to-end tests");
    }

    /** A smooth weighted round robin, as load balancers spread requests: deterministic. */
    static final class Balancer {
        private final int[] weights;
        private final int[] current;
        private int total;

        Balancer(int... weights) {
            this.weights = weights.clone();
            this.current = new int[weights.length];
            this.total = Arrays.stream(weights).sum();
        }

        int next() {
            int best = 0;
            for (int i = 0; i < weights.length; i++) {
                current[i] += weights[i];
                if (current[i] > current[best]) {
                    best = i;
                }
            }
            current[best] -= total;
            return best;
        }
    }

    private static Directive limit(long expiresAtUs) {
        return Directive.newBuilder().setId("fleet-limit").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                .setAction(DirectiveAction.DIRECTIVE_ACTION_LIMIT).setApplicationId("app-hot")
                .setLimitRequests(LIMIT_REQUESTS).setLimitPeriodSeconds(60).setLimitBurst(LIMIT_BURST)
                .setExpiresAtUs(expiresAtUs).setReason("fleet quota e2e").build();
    }

    /**
     * Runs {@code steps} steps of traffic split by {@code lb}; adds each gateway's admitted
     * requests to {@code admitted}, and to {@code control} what four tables holding the same
     * LIMIT without quotas (a budget per gateway) admit of the same requests.
     */
    private static void drive(ManualClock clock, List<VigieAgent> gateways, List<DirectiveTable> controls,
            Balancer lb, int steps, long[] admitted, long[] control) throws InterruptedException {
        for (int s = 0; s < steps; s++) {
            clock.advanceMillis(STEP_MS);
            for (int k = 0; k < OFFERED_PER_STEP; k++) {
                int g = lb.next();
                if (gateways.get(g).check("app-hot", "Orders", "v1") == null) {
                    admitted[g]++;
                }
                if (controls.get(g).check("app-hot", "Orders", "v1") == null) {
                    control[g]++;
                }
            }
            Thread.sleep(STEP_MS);
        }
    }

    private static double budget(int steps) {
        return LIMIT_REQUESTS / 60_000.0 * steps * STEP_MS;
    }

    @Test
    void fourGatewaysBehindASkewedBalancerStayWithinTheFleetBudget() throws Exception {
        Map<String, String> env = Map.of("VIGIE_QUOTA_REBALANCE_SECONDS", "0.5", "VIGIE_QUOTA_WINDOW_SECONDS", "2",
                "VIGIE_QUOTA_FLOOR_SHARE", "0.1");
        ManualClock clock = new ManualClock(System.currentTimeMillis() * 1000);
        List<VigieAgent> gateways = new ArrayList<>();
        try (SidecarProcess one = SidecarProcess.start(SidecarProcess.cli(), tmp.resolve("one"), env);
                SidecarProcess two = SidecarProcess.start(SidecarProcess.cli(), tmp.resolve("two"), env)) {
            try {
                run(clock, gateways, one, two);
            } finally {
                for (VigieAgent a : gateways) {
                    a.close();
                }
            }
        }
    }

    private static void run(ManualClock clock, List<VigieAgent> gateways, SidecarProcess one, SidecarProcess two)
            throws Exception {
        {
            for (int g = 0; g < 4; g++) {
                gateways.add(VigieAgent.builder()
                        .sidecarAddresses(List.of(one.telemetryAddress(), two.telemetryAddress()))
                        .gatewayId("gw-" + (g + 1)).channel("main").clock(clock).flushIntervalMs(5)
                        .reportIntervalMs(100).backoffMs(50, 500).disconnectedHoldMs(0).build());
            }
            for (VigieAgent a : gateways) {
                waitFor("every gateway connected to both instances", 60, () -> {
                    clock.advanceMillis(1);
                    return "CONNECTED".equals(a.targetState(0)) && "CONNECTED".equals(a.targetState(1));
                });
            }
            waitFor("both instances to see the four gateways", 60,
                    () -> one.status().getGatewaysCount() == 4 && two.status().getGatewaysCount() == 4);
            // the same directive on both instances (what fleet replication does)
            Directive d = limit(clock.wallMicros() + 3_600_000_000L);
            for (SidecarProcess sc : List.of(one, two)) {
                sc.admin().putDirective(PutDirectiveRequest.newBuilder().setActor("e2e").setReason("fleet budget")
                        .setDirective(d).build());
            }
            for (VigieAgent a : gateways) {
                waitFor("every gateway to hold a share of the limit", 60,
                        () -> {
                            long share = a.directives().sharePpm("fleet-limit");
                            return share > 0 && share < TokenBucket.WHOLE;
                        });
            }

            List<DirectiveTable> controls = new ArrayList<>();
            for (int g = 0; g < 4; g++) {
                DirectiveTable t = new DirectiveTable(clock, "main");
                t.apply(DirectiveUpdate.newBuilder().setVersion(1).setFull(true).addUpserts(d).build());
                controls.add(t);
            }
            long[] first = new long[4];
            long[] control = new long[4];
            drive(clock, gateways, controls, new Balancer(55, 25, 15, 5), PHASE_STEPS, first, control);
            long[] second = new long[4];
            Balancer shifted = new Balancer(5, 15, 25, 55);
            drive(clock, gateways, controls, shifted, PHASE_STEPS / 3, second, control);
            // one instance dies: the gateways keep its last quotas until the live one's newer
            // epochs replace them
            two.kill();
            drive(clock, gateways, controls, shifted, PHASE_STEPS - PHASE_STEPS / 3, second, control);

            long total = Arrays.stream(first).sum() + Arrays.stream(second).sum();
            double budget = budget(2 * PHASE_STEPS) + LIMIT_BURST;
            long offered = 2L * PHASE_STEPS * OFFERED_PER_STEP;
            long perGateway = Arrays.stream(control).sum();
            List<Long> shares = new ArrayList<>();
            for (VigieAgent a : gateways) {
                shares.add(a.directives().sharePpm("fleet-limit"));
            }
            String figures = String.format(
                    "offered %d, fleet budget %.0f, admitted %d (%.3f x the budget; a budget per gateway: %d, %.2f x);"
                            + " per gateway 55/25/15/5 %% %s, then 5/15/25/55 %% %s; last shares (ppm) %s",
                    offered, budget, total, total / budget, perGateway, perGateway / budget, Arrays.toString(first),
                    Arrays.toString(second), shares);
            System.out.println("fleet quota: " + figures);
            assertTrue(perGateway > 2 * budget, "the control (a budget per gateway) should overshoot: " + figures);
            assertTrue(total <= budget * (1 + TOLERANCE), "the fleet overshot its budget: " + figures);
            // the shares are not merely small: the fleet still uses most of its budget
            assertTrue(total >= budget * 0.8, "the fleet used too little of its budget: " + figures);
            // and they follow the load balancer: the busiest gateway admits the most in each phase
            assertTrue(first[0] > first[3] && second[3] > second[0], "shares did not follow the load: " + figures);
        }
    }
}
