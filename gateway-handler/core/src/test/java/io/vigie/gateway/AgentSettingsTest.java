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
        assertEquals(500, s.backoffMaxMs); // a sidecar back is reconnected within a second
        assertEquals("", s.tlsCaFile);
        assertTrue(s.problems().isEmpty());
    }

    @Test
    void tlsSettingsComeFromTheSameSourcesAndMustPair() {
        AgentSettings s = AgentSettings.from(Map.of("vigie.tls.cert-file", "/etc/vigie/gw.pem"),
                Map.of("VIGIE_TLS_CA_FILE", "/etc/vigie/ca.pem", "VIGIE_TLS_AUTHORITY", "vigie-sidecar"));
        assertEquals("/etc/vigie/ca.pem", s.tlsCaFile);
        assertEquals("vigie-sidecar", s.tlsAuthority);
        assertEquals(1, s.problems().size(), s.problems().toString());
        assertTrue(s.problems().get(0).startsWith("vigie.tls.cert-file and vigie.tls.key-file go together"));
        assertTrue(s.toString().contains("tls=on"));
        AgentSettings noCa = AgentSettings.from(
                Map.of("vigie.tls.cert-file", "/a.pem", "vigie.tls.key-file", "/a.key"), Map.of());
        assertTrue(noCa.problems().get(0).startsWith("vigie.tls.cert-file needs vigie.tls.ca-file"));
    }

    @Test
    void anUnreadableCaStopsTheAgentRatherThanFallingBackToPlaintext() {
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> VigieAgent.builder().tls("/no/such/ca.pem", "", "", "").startThread(false).build());
        assertTrue(e.getMessage().contains("cannot read the TLS files"), e.getMessage());
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

    @Test
    void severalSidecarAddressesAreReadFromTheListSettingOrItsEnvironmentVariable() {
        AgentSettings s = AgentSettings.from(Map.of(),
                Map.of("VIGIE_SIDECAR_ADDRESSES", " vigie-dc1-0:7355, vigie-dc2-0:7355 ,,[::1]:7355"));
        assertEquals(java.util.List.of("vigie-dc1-0:7355", "vigie-dc2-0:7355", "[::1]:7355"), s.sidecarAddresses);
        assertEquals("vigie-dc1-0:7355", s.sidecarAddress);
        assertTrue(s.problems().isEmpty(), s.problems().toString());
    }

    @Test
    void theSingleAddressSettingStillWorks() {
        AgentSettings s = AgentSettings.from(Map.of("vigie.sidecar.address", "10.0.0.5:7400"), Map.of());
        assertEquals(java.util.List.of("10.0.0.5:7400"), s.sidecarAddresses);
        assertTrue(s.problems().isEmpty());
    }

    @Test
    void aBadOrRepeatedAddressInTheListIsLeftOutAndReported() {
        AgentSettings s = AgentSettings.from(Map.of("vigie.sidecar.addresses", "a:1,nohost,a:1,b:99999,c:2",
                "vigie.sidecar.address", "z:9"), Map.of());
        assertEquals(java.util.List.of("a:1", "c:2"), s.sidecarAddresses);
        assertEquals(4, s.problems().size(), s.problems().toString());
        assertTrue(s.problems().get(0).startsWith("vigie.sidecar.address is ignored"));
        AgentSettings none = AgentSettings.from(Map.of("vigie.sidecar.addresses", "x"), Map.of());
        assertEquals(java.util.List.of("127.0.0.1:7355"), none.sidecarAddresses);
    }
}
