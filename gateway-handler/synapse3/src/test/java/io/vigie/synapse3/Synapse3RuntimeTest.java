package io.vigie.synapse3;

import static io.vigie.gateway.testing.SidecarProcess.waitFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vigie.gateway.EventFlags;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.testing.FakeSidecar;
import io.vigie.gateway.testing.SidecarProcess;
import io.vigie.gateway.wire.BatchDecoder;
import io.vigie.gateway.wire.Column;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.DirectiveUpdate;
import io.vigie.wire.v1.SidecarMessage;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.apache.synapse.ServerConfigurationInformation;
import org.apache.synapse.ServerManager;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * vigie's core inside a real Apache Synapse runtime (3.0.1 from Maven Central), through its own
 * entry class: HTTP requests cross a Synapse REST API carrying {@link VigieApiHandler}; the
 * records reach a (fake, TCP) sidecar, and a pushed directive makes Synapse answer 429.
 */
class Synapse3RuntimeTest {
    @TempDir
    static Path home;

    static FakeSidecar sidecar;
    static ServerManager synapse;
    static int port;
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    @BeforeAll
    static void start() throws Exception {
        sidecar = FakeSidecar.overTcp();
        System.setProperty("vigie.sidecar.address", "127.0.0.1:" + sidecar.port());
        System.setProperty("vigie.gateway.id", "synapse3");
        System.setProperty("vigie.flush.interval-ms", "1");
        System.setProperty("vigie.jmx", "false");
        port = SidecarProcess.freePort();
        Path conf = Files.createDirectories(home.resolve("repository/conf"));
        copy("axis2.xml", conf.resolve("axis2.xml"));
        copy("synapse.xml", conf.resolve("synapse.xml"));
        ServerConfigurationInformation info = new ServerConfigurationInformation();
        info.setSynapseHome(home.toString());
        info.setAxis2RepoLocation(home.resolve("repository").toString());
        info.setAxis2Xml(conf.resolve("axis2.xml").toString());
        info.setSynapseXMLLocation(conf.resolve("synapse.xml").toString());
        info.setResolveRoot(home.toString());
        info.setServerName("vigie-test");
        synapse = new ServerManager();
        synapse.init(info, null);
        synapse.start();
    }

    @AfterAll
    static void stop() {
        if (synapse != null) {
            synapse.stop();
            synapse.shutdown();
        }
        VigieApiHandler.Shared.close();
        if (sidecar != null) {
            sidecar.close();
        }
        for (String p : new String[] {"vigie.sidecar.address", "vigie.gateway.id", "vigie.flush.interval-ms", "vigie.jmx"}) {
            System.clearProperty(p);
        }
    }

    private static void copy(String resource, Path to) throws Exception {
        try (InputStream in = Synapse3RuntimeTest.class.getResourceAsStream("/synapse3/" + resource)) {
            String text = new String(in.readAllBytes(), StandardCharsets.UTF_8).replace("@PORT@", Integer.toString(port));
            Files.writeString(to, text);
        }
    }

    private static HttpResponse<String> get(String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void requestsThroughSynapseAreRecordedThenRefusedByADirective() throws Exception {
        HttpResponse<String> ok = get("/orders/1");
        assertEquals(200, ok.statusCode(), ok.body());
        assertTrue(ok.body().contains("<id>42</id>"), ok.body());
        waitFor("the record to reach the sidecar", 30, () -> sidecar.eventsApplied() >= 1);
        BatchDecoder.Event e = sidecar.last().events.get(0);
        assertEquals("orders", e.string(Column.API_NAME));
        assertEquals("/orders", e.string(Column.API_CONTEXT));
        assertEquals(200, e.number(Column.HTTP_STATUS));
        assertEquals(HttpMethods.GET, e.number(Column.HTTP_METHOD));
        assertEquals("synapse3", sidecar.last().received.get(0).getHello().getGatewayId());

        sidecar.last().push(SidecarMessage.newBuilder().setDirectives(DirectiveUpdate.newBuilder().setVersion(2)
                .addUpserts(Directive.newBuilder().setId("block-orders").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                        .setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK).setApiName("orders").setReason("test block")
                        .setExpiresAtUs(System.currentTimeMillis() * 1000 + 60_000_000L)))
                .build());
        waitFor("the directive to apply", 30, () -> {
            try {
                return get("/orders/2").statusCode() == 429;
            } catch (Exception ex) {
                return false;
            }
        });
        HttpResponse<String> refused = get("/orders/3");
        assertEquals(429, refused.statusCode());
        assertTrue(refused.body().contains("<code>900805</code>"), refused.body());
        assertTrue(refused.body().contains("test block"), refused.body());
        waitFor("the refusal to be recorded", 30, () -> sidecar.last().events.stream()
                .anyMatch(ev -> (ev.number(Column.FLAGS) & EventFlags.REFUSED_BY_DIRECTIVE) != 0));
        BatchDecoder.Event last = sidecar.last().events.get(sidecar.last().events.size() - 1);
        assertEquals(429, last.number(Column.HTTP_STATUS));
        assertEquals(900805, last.number(Column.ERROR_CODE));
    }
}
