package io.vigie.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AgentSettingsTest {
    @Test
    void defaultsAreSafe() {
        AgentSettings s = AgentSettings.from(Map.of(), Map.of());
        assertTrue(s.enabled);
        assertEquals("127.0.0.1:7355", s.sidecarAddress);
        assertEquals("gateway", s.gatewayId);
        assertEquals(65_536, s.queueCapacity);
        assertEquals("carbon.super", s.tenant);
        assertTrue(s.problems().isEmpty());
    }

    @Test
    void propertiesBeatEnvironmentWhichBeatsTheFile(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("vigie.properties");
        Files.writeString(f, "vigie.channel=sale\nvigie.region=dc2\nvigie.queue.capacity=1024\n");
        AgentSettings s = AgentSettings.from(
                Map.of("vigie.config", f.toString(), "vigie.channel", "main"),
                Map.of("VIGIE_REGION", "dc1", "HOSTNAME", "gw-pod-7"));
        assertEquals("main", s.channel);
        assertEquals("dc1", s.region);
        assertEquals(1024, s.queueCapacity);
        assertEquals("gw-pod-7", s.gatewayId);
    }

    @Test
    void badValuesFallBackToDefaultsWithAMessage() {
        AgentSettings s = AgentSettings.from(Map.of("vigie.queue.capacity", "lots", "vigie.sidecar.address",
                "nohost", "vigie.enforcement", "maybe", "vigie.flush.interval-ms", "0", "vigie.config", "/no/such"),
                Map.of());
        assertEquals(65_536, s.queueCapacity);
        assertEquals("127.0.0.1:7355", s.sidecarAddress);
        assertTrue(s.enforcement);
        assertEquals(5, s.flushIntervalMs);
        assertEquals(5, s.problems().size(), s.problems().toString());
        assertTrue(s.problems().stream().anyMatch(p -> p.startsWith("vigie.queue.capacity=lots: not an integer")));
    }

    @Test
    void theHandlerCanBeSwitchedOff() {
        assertFalse(AgentSettings.from(Map.of(), Map.of("VIGIE_ENABLED", "false")).enabled);
    }
}
