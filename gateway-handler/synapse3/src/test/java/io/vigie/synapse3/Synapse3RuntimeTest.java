package io.vigie.synapse3;

import static io.vigie.gateway.testing.SidecarProcess.waitFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.vigie.gateway.ClientIp;
import io.vigie.gateway.EventFlags;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.testing.FakeSidecar;
import io.vigie.gateway.testing.SidecarProcess;
import io.vigie.gateway.wire.BatchDecoder;
import io.vigie.gateway.wire.BatchEncoder;
import io.vigie.gateway.wire.Column;
import io.vigie.synapse.SynapseRefusal;
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
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.xml.parsers.DocumentBuilderFactory;
import org.apache.synapse.ServerConfigurationInformation;
import org.apache.synapse.ServerManager;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/**
 * vigie's core inside a real Apache Synapse runtime (3.0.1 from Maven Central), through its own
 * entry class: HTTP requests cross a Synapse REST API carrying {@link VigieApiHandler}; the
 * records reach a (fake, TCP) sidecar, and pushed directives make Synapse refuse as WSO2 4.x does (body,
 * status and headers checked against WSO2's own _throttle_out_handler_ sequence when the shared
 * conformance files are there; that test is skipped otherwise).
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class Synapse3RuntimeTest {
    @TempDir
    static Path home;

    static FakeSidecar sidecar;
    static ServerManager synapse;
    static int port;
    static final String SALT = "runtime-salt";
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    @BeforeAll
    static void start() throws Exception {
        sidecar = FakeSidecar.overTcp();
        System.setProperty("vigie.sidecar.address", "127.0.0.1:" + sidecar.port());
        System.setProperty("vigie.gateway.id", "synapse3");
        System.setProperty("vigie.flush.interval-ms", "1");
        System.setProperty("vigie.jmx", "false");
        System.setProperty("vigie.capture.client-ip-salt", SALT);
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
        for (String p : new String[] {"vigie.sidecar.address", "vigie.gateway.id", "vigie.flush.interval-ms", "vigie.jmx",
            "vigie.capture.client-ip-salt"}) {
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

    /**
     * The directives outlive the whole class (an hour): a test that waits (a slow machine) must
     * not see the directive of an earlier test expire under it (the LIMIT of test 2 is what makes
     * test 5's requests 429).
     */
    static final long DIRECTIVE_LIFE_US = 3_600_000_000L;
    static final java.util.Map<String, Directive> DIRECTIVES = new java.util.LinkedHashMap<>();
    static long directivesVersion = 1;

    /**
     * Pushes a directive as a real sidecar does: on the open stream, and in the full table every
     * new stream is welcomed with, so that a reconnect of the handler (a Welcome late on a busy
     * machine, a stream ended) does not forget it.
     */
    private static synchronized void pushDirective(Directive.Builder d) {
        Directive directive = d.build();
        DIRECTIVES.put(directive.getId(), directive);
        directivesVersion++;
        sidecar.initialDirectives = DirectiveUpdate.newBuilder().setVersion(directivesVersion).setFull(true)
                .addAllUpserts(DIRECTIVES.values()).build();
        sidecar.last().push(SidecarMessage.newBuilder().setDirectives(DirectiveUpdate.newBuilder()
                .setVersion(directivesVersion).addUpserts(directive)).build());
    }

    /** Every event the fake sidecar received, on every stream the handler opened (in order). */
    private static List<BatchDecoder.Event> events() {
        List<BatchDecoder.Event> all = new ArrayList<>();
        for (FakeSidecar.Stream st : sidecar.streams) {
            all.addAll(st.events);
        }
        return all;
    }

    @Test
    @Order(1)
    void requestsThroughSynapseAreRecordedThenRefusedByADirective() throws Exception {
        HttpResponse<String> ok = get("/orders/1");
        assertEquals(200, ok.statusCode(), ok.body());
        assertTrue(ok.body().contains("<id>42</id>"), ok.body());
        waitFor("the record to reach the sidecar", 30, () -> sidecar.eventsApplied() >= 1);
        BatchDecoder.Event e = events().get(0);
        assertEquals("orders", e.string(Column.API_NAME));
        assertEquals("/orders", e.string(Column.API_CONTEXT));
        assertEquals(200, e.number(Column.HTTP_STATUS));
        assertEquals(HttpMethods.GET, e.number(Column.HTTP_METHOD));
        assertEquals("synapse3", sidecar.streams.get(0).received.get(0).getHello().getGatewayId());
        assertTrue(sidecar.streams.get(0).received.get(0).getHello().getClockUs() > 0, "the gateway's clock in Hello");
        assertEquals("carbon.super", e.string(Column.TENANT), "a context without /t/: the super tenant");
        assertEquals(Wso2LikeHandler.uuidOf("orders"), e.string(Column.API_ID));
        assertEquals(200, e.number(Column.TARGET_STATUS), "the backend's status");
        assertEquals(hashOf("127.0.0.1"), e.string(Column.CLIENT_IP), "no X-Forwarded-For: the remote address, hashed");

        pushDirective(Directive.newBuilder().setId("block-orders").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                .setAction(DirectiveAction.DIRECTIVE_ACTION_BLOCK).setApiName("orders").setReason("test block")
                .setExpiresAtUs(System.currentTimeMillis() * 1000 + DIRECTIVE_LIFE_US));
        waitFor("the directive to apply", 30, () -> {
            try {
                return get("/orders/2").statusCode() == 403;
            } catch (Exception ex) {
                return false;
            }
        });
        HttpResponse<String> refused = get("/orders/3");
        assertEquals(403, refused.statusCode());
        assertTrue(refused.body().contains("\"code\":\"900805\""), refused.body());
        assertTrue(refused.body().contains("test block"), refused.body());
        waitFor("the refusal to be recorded", 30, () -> events().stream()
                .anyMatch(ev -> (ev.number(Column.FLAGS) & EventFlags.REFUSED_BY_DIRECTIVE) != 0));
        List<BatchDecoder.Event> all = events();
        BatchDecoder.Event last = all.get(all.size() - 1);
        assertEquals(403, last.number(Column.HTTP_STATUS));
        assertEquals(900805, last.number(Column.ERROR_CODE));
        assertEquals(refused.body().getBytes(StandardCharsets.UTF_8).length, last.number(Column.RESPONSE_BYTES),
                "the size of the answer the client got");
        assertEquals(0, last.number(Column.TARGET_STATUS), "refused: the backend was never called");
        assertEquals(Wso2LikeHandler.uuidOf("orders"), last.string(Column.API_ID));
    }

    /** What the handler sends for an address captured with the test's salt. */
    private static String hashOf(String address) {
        return BatchEncoder.hashed(ClientIp.hashed(SALT).hash(address, 0, address.length()));
    }

    /** A tenant's API, and a client behind a proxy: the tenant, API id and hashed client address recorded. */
    @Test
    @Order(4)
    void aTenantsApiAndAClientBehindAProxyAreRecordedAsWso2sAnalyticsWouldName() throws Exception {
        HttpResponse<String> ok = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/t/acme.com/shop/items")).timeout(Duration.ofSeconds(30))
                .header("X-Forwarded-For", "203.0.113.7, 10.0.0.1").GET().build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, ok.statusCode(), ok.body());
        waitFor("the tenant's record", 30, () -> events().stream()
                .anyMatch(ev -> ev.string(Column.API_NAME).equals("shop")));
        BatchDecoder.Event e = events().stream().filter(ev -> ev.string(Column.API_NAME).equals("shop"))
                .findFirst().orElseThrow();
        assertEquals("/t/acme.com/shop", e.string(Column.API_CONTEXT));
        assertEquals("acme.com", e.string(Column.TENANT));
        assertEquals(Wso2LikeHandler.uuidOf("shop"), e.string(Column.API_ID));
        assertEquals(hashOf("203.0.113.7"), e.string(Column.CLIENT_IP), "the first X-Forwarded-For entry, salted hash");
        assertTrue(e.string(Column.CLIENT_IP).matches("h:[0-9a-f]{16}"), e.string(Column.CLIENT_IP));
        assertEquals(200, e.number(Column.TARGET_STATUS));
        assertEquals(200, e.number(Column.HTTP_STATUS));
    }

    /**
     * The CORS headers of a refusal follow WSO2's own {@code _cors_request_handler_} (read at test
     * time): every transport property it sets, under the conditions of its filters, evaluated
     * against the API's CORS configuration, for a GET and for an OPTIONS preflight.
     */
    @Test
    @Order(5)
    void refusalsCarryTheCorsHeadersOfWso2sCorsSequence() throws Exception {
        Path file = Path.of(System.getProperty("vigie.conformance", "../../shared/conformance"),
                "synapse-sequences", "_cors_request_handler_.xml");
        assumeTrue(Files.isRegularFile(file), "no WSO2 conformance files at " + file);
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Document seq = f.newDocumentBuilder().parse(file.toFile());
        java.util.Map<String, String> ctx = new java.util.HashMap<>(Wso2LikeHandler.CORS);
        ctx.put("Access-Control-Allow-Origin", Wso2LikeHandler.ALLOWED_ORIGIN);
        List<String> names = new ArrayList<>();
        for (String method : new String[] {"GET", "OPTIONS"}) {
            java.util.Map<String, String> expected = new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
            NodeList props = seq.getElementsByTagNameNS("*", "property");
            for (int k = 0; k < props.getLength(); k++) {
                Element p = (Element) props.item(k);
                if (!"transport".equals(p.getAttribute("scope"))) {
                    continue;
                }
                String name = p.getAttribute("name");
                if (!names.contains(name)) {
                    names.add(name);
                }
                String expr = p.getAttribute("expression");
                assertTrue(expr.startsWith("$ctx:"), expr);
                boolean applies = true;
                for (org.w3c.dom.Node n = p.getParentNode(); n != null; n = n.getParentNode()) {
                    if (n instanceof Element && "filter".equals(n.getLocalName())) {
                        applies &= corsCondition(((Element) n).getAttribute("source"),
                                ((Element) n).getAttribute("regex"), ctx, method);
                    }
                }
                String value = ctx.get(expr.substring("$ctx:".length()));
                if (applies && value != null) {
                    expected.put(name, value);
                }
            }
            // "payments" is refused since the limit of the refusal test: every request is answered 429
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/payments/cors"))
                    .timeout(Duration.ofSeconds(30)).header("Origin", Wso2LikeHandler.ALLOWED_ORIGIN)
                    .method(method, HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(429, r.statusCode(), method + " " + r.body());
            java.util.Map<String, String> got = new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
            for (String name : names) {
                r.headers().firstValue(name).ifPresent(v -> got.put(name, v));
            }
            assertEquals(expected, got, method);
            assertTrue(expected.containsKey("Access-Control-Allow-Origin"), "the control: CORS is on");
        }
        assertEquals(5, names.size(), "the sequence's five headers: " + names);
    }

    /** One filter condition of {@code _cors_request_handler_}; an unknown one fails the test. */
    private static boolean corsCondition(String source, String regex, java.util.Map<String, String> ctx, String method) {
        boolean wantTrue = "true".equals(regex);
        String s = source.replace(" ", "");
        if (s.equals("$ctx:CORSConfiguration.Enabled")) {
            return wantTrue; // CORS is enabled on the API
        }
        if (s.matches("boolean\\(\\$trp:[A-Za-z-]+\\)")) {
            return !wantTrue; // the header is not set yet (a refusal starts from the request's headers)
        }
        if (s.matches("boolean\\(\\$trp:[A-Za-z-]+\\)=falseand\\$ctx:api\\.ut\\.HTTP_METHOD='OPTIONS'")) {
            return wantTrue == method.equals("OPTIONS");
        }
        java.util.regex.Matcher m = Pattern.compile("boolean\\(\\$ctx:([A-Za-z-]+)\\)").matcher(s);
        if (m.matches()) {
            String v = ctx.get(m.group(1));
            return wantTrue == (v != null && !v.isEmpty());
        }
        throw new AssertionError("a condition of _cors_request_handler_ this test does not know: " + source);
    }

    /** Every request the gateway answers is recorded: an authentication failure and a 404 too. */
    @Test
    @Order(3)
    void anAuthenticationFailureAndA404AreRecordedWithTheirApiAndCode() throws Exception {
        HttpResponse<String> denied = get("/secured/orders");
        assertEquals(401, denied.statusCode(), denied.body());
        HttpResponse<String> missing = get("/catalog/nothing-here");
        assertEquals(404, missing.statusCode(), missing.body());
        waitFor("both records to reach the sidecar", 30, () -> events().stream()
                .filter(ev -> ev.string(Column.API_NAME).equals("secured") || ev.string(Column.API_NAME).equals("catalog"))
                .count() >= 2);
        BatchDecoder.Event auth = events().stream()
                .filter(ev -> ev.string(Column.API_NAME).equals("secured")).findFirst().orElseThrow();
        assertEquals("/secured", auth.string(Column.API_CONTEXT));
        assertEquals(401, auth.number(Column.HTTP_STATUS));
        assertEquals(900901, auth.number(Column.ERROR_CODE));
        assertEquals(EventFlags.FAULT, auth.number(Column.FLAGS), "a fault, not throttling");
        assertEquals("", auth.string(Column.APPLICATION_ID));
        BatchDecoder.Event notFound = events().stream()
                .filter(ev -> ev.string(Column.API_NAME).equals("catalog")).findFirst().orElseThrow();
        assertEquals("/catalog", notFound.string(Column.API_CONTEXT));
        assertEquals(404, notFound.number(Column.HTTP_STATUS));
        assertEquals(404, notFound.number(Column.ERROR_CODE));
        assertEquals(-1, notFound.number(Column.RESPONSE_BYTES), "an answer the gateway made: size unknown");
    }

    /** The sequence file WSO2 4.0-4.6 answers its own refusals with, read at test time. */
    private static Document throttleOutSequence() throws Exception {
        Path file = Path.of(System.getProperty("vigie.conformance", "../../shared/conformance"),
                "synapse-sequences", "_throttle_out_handler_.xml");
        assumeTrue(Files.isRegularFile(file), "no WSO2 conformance files at " + file);
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        return f.newDocumentBuilder().parse(file.toFile());
    }

    /** The transport headers the sequence removes before answering. */
    private static List<String> removedHeaders(Document seq) {
        List<String> out = new ArrayList<>();
        NodeList props = seq.getElementsByTagNameNS("*", "property");
        for (int k = 0; k < props.getLength(); k++) {
            Element p = (Element) props.item(k);
            if ("transport".equals(p.getAttribute("scope")) && "remove".equals(p.getAttribute("action"))) {
                out.add(p.getAttribute("name"));
            }
        }
        return out;
    }

    /** The sequence's JSON payload formats as patterns, $1.. becoming groups; the longest first. */
    private static List<Pattern> payloadShapes(Document seq) {
        List<String> formats = new ArrayList<>();
        NodeList fs = seq.getElementsByTagNameNS("*", "format");
        for (int k = 0; k < fs.getLength(); k++) {
            formats.add(fs.item(k).getTextContent().trim());
        }
        formats.sort(Comparator.comparingInt(String::length).reversed());
        List<Pattern> out = new ArrayList<>();
        for (String f : formats) {
            StringBuilder re = new StringBuilder();
            Matcher m = Pattern.compile("\\$\\d").matcher(f);
            int at = 0;
            while (m.find()) {
                re.append(Pattern.quote(f.substring(at, m.start()))).append("([^\"]*)");
                at = m.end();
            }
            re.append(Pattern.quote(f.substring(at)));
            out.add(Pattern.compile(re.toString()));
        }
        return out;
    }

    private static HttpResponse<String> getWithCredentials(String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).header("Authorization", "Bearer secret-token")
                .header("Accept", "application/json").header("X-JWT-Assertion", "eyJ.backend.jwt")
                .GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    @Order(2)
    void refusalsHaveTheBodyStatusAndHeadersOfWso2sThrottleOutSequence() throws Exception {
        Document seq = throttleOutSequence();
        List<String> removed = removedHeaders(seq);
        assertEquals(SynapseRefusal.REMOVED_HEADERS, removed, "vigie removes what WSO2 4.x removes");
        List<Pattern> shapes = payloadShapes(seq);
        assertEquals(2, shapes.size(), "with and without nextAccessTime");

        // a BLOCK (pushed by the first test): 403, the flat body without nextAccessTime
        HttpResponse<String> blocked = getWithCredentials("/orders/4");
        assertEquals(403, blocked.statusCode(), blocked.body());
        assertFalse(shapes.get(0).matcher(blocked.body()).matches(), blocked.body());
        Matcher b = shapes.get(1).matcher(blocked.body());
        assertTrue(b.matches(), blocked.body());
        assertEquals("900805", b.group(1));
        assertEquals("Message blocked", b.group(2));
        assertEquals("You have been blocked from accessing the resource (vigie directive block-orders: test block)",
                b.group(3));
        assertTrue(blocked.headers().firstValue("Content-Type").orElse("").startsWith("application/json"),
                blocked.headers().toString());
        for (String h : removed) {
            assertTrue(blocked.headers().firstValue(h).isEmpty(), h + " echoed: " + blocked.headers());
        }
        // the control: the request's other transport headers are echoed (Java's h2c upgrade offer)
        assertTrue(blocked.headers().firstValue("Upgrade").isPresent(), blocked.headers().toString());

        // a LIMIT of one request an hour: 429, Retry-After in seconds, the body with nextAccessTime
        pushDirective(Directive.newBuilder().setId("limit-payments").setMode(DirectiveMode.DIRECTIVE_MODE_ENFORCE)
                .setAction(DirectiveAction.DIRECTIVE_ACTION_LIMIT).setApiName("payments")
                .setLimitRequests(1).setLimitPeriodSeconds(3600)
                .setExpiresAtUs(System.currentTimeMillis() * 1000 + DIRECTIVE_LIFE_US));
        waitFor("the limit to apply", 30, () -> {
            try {
                return getWithCredentials("/payments/1").statusCode() == 429;
            } catch (Exception ex) {
                return false;
            }
        });
        HttpResponse<String> limited = getWithCredentials("/payments/2");
        assertEquals(429, limited.statusCode(), limited.body());
        Matcher l = shapes.get(0).matcher(limited.body());
        assertTrue(l.matches(), limited.body());
        assertEquals("900806", l.group(1));
        assertEquals("Message throttled out", l.group(2));
        assertEquals("You have exceeded your quota (vigie directive limit-payments)", l.group(3));
        assertTrue(l.group(4).matches("\\d{4}-[A-Z][a-z]{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}\\+0000 UTC"), l.group(4));
        long retryAfter = Long.parseLong(limited.headers().firstValue("Retry-After").orElseThrow());
        assertTrue(retryAfter > 3000 && retryAfter <= 3600, "seconds until the bucket has a token: " + retryAfter);
        for (String h : removed) {
            assertTrue(limited.headers().firstValue(h).isEmpty(), h + " echoed: " + limited.headers());
        }
    }
}
