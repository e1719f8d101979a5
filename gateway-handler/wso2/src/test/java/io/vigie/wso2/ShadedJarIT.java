package io.vigie.wso2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.testing.FakeSidecar;
import io.vigie.gateway.wire.Column;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import org.junit.jupiter.api.Test;

/** Checks the installable jar itself, after {@code package}. */
class ShadedJarIT {
    private static Path jar() {
        Path p = Paths.get(System.getProperty("vigie.shadedJar", "target/vigie-wso2-handler-0.1.0.jar"));
        assertTrue(Files.isRegularFile(p), "no shaded jar at " + p);
        return p;
    }

    @Test
    void everyThirdPartyClassIsRelocated() throws Exception {
        List<String> unrelocated = new ArrayList<>();
        List<String> badServices = new ArrayList<>();
        int classes = 0;
        try (JarFile jf = new JarFile(jar().toFile())) {
            for (Enumeration<JarEntry> en = jf.entries(); en.hasMoreElements(); ) {
                JarEntry e = en.nextElement();
                String n = e.getName();
                if (n.endsWith(".class")) {
                    classes++;
                    if (!n.startsWith("io/vigie/")) {
                        unrelocated.add(n);
                    }
                    if (n.startsWith("org/apache/") || n.startsWith("org/wso2/")) {
                        unrelocated.add("stand-in leaked: " + n);
                    }
                } else if (n.startsWith("META-INF/services/") && !e.isDirectory()) {
                    String service = n.substring("META-INF/services/".length());
                    if (!service.startsWith("io.vigie.")) {
                        badServices.add(n);
                    }
                    try (BufferedReader r = new BufferedReader(
                            new InputStreamReader(jf.getInputStream(e), StandardCharsets.UTF_8))) {
                        for (String line; (line = r.readLine()) != null; ) {
                            String l = line.trim();
                            if (!l.isEmpty() && !l.startsWith("#") && !l.startsWith("io.vigie.")) {
                                badServices.add(n + ": " + l);
                            }
                        }
                    }
                } else if (!e.isDirectory() && !n.startsWith("META-INF/") && !n.startsWith("io/vigie/")) {
                    unrelocated.add("resource outside io/vigie: " + n);
                }
            }
        }
        assertTrue(classes > 1000, "the jar holds only " + classes + " classes");
        assertEquals(List.of(), unrelocated, "unrelocated entries");
        assertEquals(List.of(), badServices, "service files naming unrelocated classes");
    }

    /** The relocated gRPC/Netty/protobuf really work: the shaded agent streams to a TCP sidecar. */
    @Test
    void theShadedAgentStreamsInIsolation() throws Exception {
        try (FakeSidecar sidecar = FakeSidecar.overTcp();
                URLClassLoader loader = new URLClassLoader(new URL[] {jar().toUri().toURL()},
                        ClassLoader.getPlatformClassLoader())) {
            Class<?> agentClass = loader.loadClass("io.vigie.gateway.VigieAgent");
            Object builder = agentClass.getMethod("builder").invoke(null);
            Class<?> b = builder.getClass();
            b.getMethod("sidecarAddress", String.class).invoke(builder, "127.0.0.1:" + sidecar.port());
            b.getMethod("gatewayId", String.class).invoke(builder, "shaded-jar-test");
            b.getMethod("flushIntervalMs", long.class).invoke(builder, 1L);
            AutoCloseable agent = (AutoCloseable) b.getMethod("build").invoke(builder);
            try {
                Method record = agentClass.getMethod("record");
                Class<?> rc = loader.loadClass("io.vigie.gateway.RequestRecord");
                Method offer = agentClass.getMethod("offer", rc);
                for (int k = 0; k < 100; k++) {
                    Object r = record.invoke(agent);
                    rc.getMethod("apiName", String.class).invoke(r, "Orders");
                    rc.getMethod("apiVersion", String.class).invoke(r, "v1");
                    rc.getMethod("httpStatus", int.class).invoke(r, 200);
                    assertEquals(Boolean.TRUE, offer.invoke(agent, r));
                }
                long deadline = System.nanoTime() + 20_000_000_000L;
                while (sidecar.eventsApplied() < 100 && System.nanoTime() < deadline) {
                    Thread.sleep(20); // waiting for a real network peer, bounded
                }
                assertEquals(100, sidecar.eventsApplied());
                assertEquals("shaded-jar-test", sidecar.last().received.get(0).getHello().getGatewayId());
                assertEquals("Orders", sidecar.last().events.get(99).string(Column.API_NAME));
            } finally {
                agent.close();
            }
        }
    }

    /** The handler class links against WSO2's API (here the stand-ins) and the relocated core. */
    @Test
    void theHandlerLoadsBesideWso2sClasses() throws Exception {
        Path standIn = Paths.get(System.getProperty("vigie.standIn", "../wso2-stand-in/target/classes"));
        System.setProperty("vigie.enabled", "false");
        try (URLClassLoader loader = new URLClassLoader(
                new URL[] {jar().toUri().toURL(), standIn.toUri().toURL()}, ClassLoader.getPlatformClassLoader())) {
            Class<?> h = loader.loadClass("io.vigie.wso2.VigieSynapseHandler");
            Object handler = h.getConstructor().newInstance();
            Class<?> base = loader.loadClass("org.apache.synapse.AbstractExtendedSynapseHandler");
            assertTrue(base.isInstance(handler));
            assertEquals(Boolean.TRUE, h.getMethod("handleServerInit").invoke(handler));
            assertEquals(Boolean.TRUE, h.getMethod("handleServerShutDown").invoke(handler));
        } finally {
            System.clearProperty("vigie.enabled");
        }
    }
}
