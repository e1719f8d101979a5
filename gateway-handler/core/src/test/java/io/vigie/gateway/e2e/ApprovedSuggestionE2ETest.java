package io.vigie.gateway.e2e;

import static io.vigie.gateway.testing.SidecarProcess.waitFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.Rule;
import io.vigie.gateway.testing.SidecarProcess;
import io.vigie.wire.v1.ApproveSuggestionRequest;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.ListSuggestionsRequest;
import io.vigie.wire.v1.Suggestion;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The operator's path end to end: the handler streams a retry storm to a real {@code vigie serve},
 * the sidecar suggests a temporary limit, an operator approves it in the CLI (a separate
 * {@code vigie} process), and the handler enforces the directive. The time from the approval to
 * the handler's table is printed; its p99 is measured by {@code benchmarks/bench_policy.py} (the
 * tests assert no timings).
 */
@Tag("e2e")
class ApprovedSuggestionE2ETest {
    @TempDir
    Path tmp;

    private static final Pattern ID = Pattern.compile("\"id\": \"(sg-[0-9a-f]{12})\"");

    @BeforeAll
    static void needsTheCli() {
        Assumptions.assumeTrue(SidecarProcess.cli() != null,
                "set -Dvigie.cli=/path/to/.venv/bin/vigie (make test-java does) to run the end-to-end tests");
    }

    private static void storm(VigieAgent a, String app) {
        long t0 = System.currentTimeMillis() * 1000 - 600_000_000L;
        for (int k = 0; k < 120; k++) { // a request every 0.5 s on one resource, each a 503
            a.offer(a.record().applicationId(app).applicationName("Storm " + app).applicationOwner("team-s")
                    .apiName("Stock").apiVersion("v1").apiContext("/stock/v1").resourceTemplate("/items/{id}")
                    .httpMethod(HttpMethods.GET).httpStatus(503).errorCode(101503).latencyUs(2_000)
                    .subscriptionTier("Gold").eventTimeUs(t0 + k * 500_000L));
        }
    }

    private static String cli(SidecarProcess sc, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(SidecarProcess.cli()));
        cmd.addAll(List.of(args));
        cmd.addAll(List.of("--admin", "127.0.0.1:" + sc.adminPort, "--state-dir", sc.stateDir.toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("VIGIE_ACTOR", "e2e-operator");
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the CLI did not finish");
        assertEquals(0, p.exitValue(), String.join(" ", cmd) + "\n" + out);
        return out;
    }

    private static String stormSuggestion(SidecarProcess sc, String app) throws Exception {
        String out = cli(sc, "suggestions", "list", "--class", "retry_storm", "--application", app, "--json");
        Matcher m = ID.matcher(out);
        assertTrue(m.find(), "no retry_storm suggestion for " + app + ": " + out);
        return m.group(1);
    }

    @Test
    void aSuggestionApprovedInTheCliIsEnforcedByTheHandler() throws Exception {
        try (SidecarProcess sc = SidecarProcess.start(SidecarProcess.cli(), tmp.resolve("state"));
                VigieAgent a = VigieAgent.builder().sidecarAddress(sc.telemetryAddress()).gatewayId("gw-e2e")
                        .channel("main").flushIntervalMs(5).reportIntervalMs(200).backoffMs(50, 500).build()) {
            waitFor("the stream", 60, () -> "CONNECTED".equals(a.streamState()));
            storm(a, "app-storm");
            storm(a, "app-storm-2");
            waitFor("the storms to be applied", 60, () -> a.counters().acked == 240);
            String id = stormSuggestion(sc, "app-storm");
            assertNull(a.check("app-storm", "Stock", "v1"), "nothing reaches a gateway before approval");

            // approved in the CLI: a new vigie process
            long start = System.nanoTime();
            String approved = cli(sc, "suggestions", "approve", id, "--mode", "enforce", "--reason",
                    "retry storm on Stock", "--json");
            waitFor("the approved directive to reach the handler", 30, () -> a.directives().activeCount() == 1);
            long cliMs = (System.nanoTime() - start) / 1_000_000;
            assertTrue(approved.contains("\"state\": \"pushed\""), approved);

            // the handler enforces it: a limit of 2 a minute lets two through, then refuses
            Rule refused = null;
            for (int k = 0; k < 5 && refused == null; k++) {
                refused = a.check("app-storm", "Stock", "v1");
            }
            assertNotNull(refused, "the approved limit is enforced");
            assertEquals(900806, refused.errorCode());
            // the requests checked are recorded as the handler records them (the sidecar counts a
            // gateway's hits only up to the requests it sent in the directive's scope)
            long now = System.currentTimeMillis() * 1000;
            for (int k = 0; k < 5; k++) {
                a.offer(a.record().applicationId("app-storm").applicationName("Storm app-storm")
                        .applicationOwner("team-s").apiName("Stock").apiVersion("v1").apiContext("/stock/v1")
                        .resourceTemplate("/items/{id}").httpMethod(HttpMethods.GET).httpStatus(429)
                        .errorCode(900806).latencyUs(100).subscriptionTier("Gold").eventTimeUs(now + k));
            }
            assertNull(a.check("app-other", "Stock", "v1"), "other consumers are untouched");

            // approved through the admin service (what the CLI calls), timed from the call
            Suggestion second = sc.admin().listSuggestions(ListSuggestionsRequest.newBuilder()
                    .setClassName("retry_storm").setApplication("app-storm-2").build()).getSuggestions(0);
            long t0 = System.nanoTime();
            Suggestion pushed = sc.admin().approveSuggestion(ApproveSuggestionRequest.newBuilder()
                    .setId(second.getId()).setActor("e2e").setReason("storm 2")
                    .setMode(DirectiveMode.DIRECTIVE_MODE_SHADOW).build());
            waitFor("the second directive to reach the handler", 30, () -> a.directives().activeCount() == 2);
            long rpcMs = (System.nanoTime() - t0) / 1_000_000;
            assertEquals("pushed", pushed.getState());
            for (int k = 0; k < 5; k++) {
                assertNull(a.check("app-storm-2", "Stock", "v1"), "shadow refuses nothing");
            }
            System.out.printf("approve -> handler: %d ms through a new vigie process, %d ms through the admin"
                    + " service%n", cliMs, rpcMs);

            // the hits the handler reports come back, and the audit trail says who approved
            waitFor("the handler's hits to reach the sidecar", 30, () -> sc.admin().listDirectives(
                    io.vigie.wire.v1.ListDirectivesRequest.getDefaultInstance()).getHitsList().stream()
                    .anyMatch(h -> h.getDirectiveId().equals(id) && h.getEnforcedHits() >= 1));
            String shown = cli(sc, "suggestions", "show", id, "--json");
            assertTrue(shown.contains("\"actor\": \"e2e-operator (self-declared)\""), shown); // a token caller
            assertTrue(shown.contains("\"reason\": \"retry storm on Stock\""), shown);
        }
    }
}
