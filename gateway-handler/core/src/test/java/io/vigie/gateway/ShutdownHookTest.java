package io.vigie.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.testing.ExitFlushMain;
import io.vigie.gateway.testing.FakeSidecar;
import io.vigie.gateway.testing.SidecarProcess;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * APIM 4.x never calls {@code handleServerShutDown}: the agent's own JVM shutdown hook must
 * deliver what was offered just before a normal exit. Proven with a child JVM
 * ({@link ExitFlushMain}) and a TCP sidecar.
 */
class ShutdownHookTest {
    private static final int EVENTS = 500;

    private static int runChild(String address, String mode) throws Exception {
        String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
        Process p = new ProcessBuilder(List.of(java, "-cp", System.getProperty("java.class.path"),
                ExitFlushMain.class.getName(), address, Integer.toString(EVENTS), mode))
                .redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the child exits");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(out.contains("offered " + EVENTS), out);
        return p.exitValue();
    }

    @Test
    void eventsOfferedJustBeforeANormalExitReachTheSidecar() throws Exception {
        try (FakeSidecar sidecar = FakeSidecar.overTcp()) {
            assertEquals(0, runChild("127.0.0.1:" + sidecar.port(), "hook"));
            SidecarProcess.waitFor("the last batch", 10, () -> sidecar.eventsApplied() >= EVENTS);
            assertEquals(EVENTS, sidecar.eventsApplied());
        }
    }

    @Test
    void withoutTheHookTheLastBatchIsLost() throws Exception {
        try (FakeSidecar sidecar = FakeSidecar.overTcp()) {
            assertEquals(0, runChild("127.0.0.1:" + sidecar.port(), "nohook"));
            assertEquals(0, sidecar.eventsApplied(), "the control: only the hook delivers them");
        }
    }
}
