package io.vigie.wso2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyBoolean;
import static org.mockito.ArgumentMatchers.anyString;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.Mockito.doAnswer;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.mockStatic;
import static org.mockito.Mockito.never;
import static org.mockito.Mockito.when;

import io.vigie.gateway.EventFlags;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.KeyTypes;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.testing.FakeSidecar;
import io.vigie.gateway.testing.ManualClock;
import io.vigie.gateway.wire.BatchDecoder;
import io.vigie.gateway.wire.Column;
import io.vigie.synapse.SynapseCapture;
import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.DirectiveUpdate;
import java.util.HashMap;
import java.util.Map;
import org.apache.axis2.AxisFault;
import org.apache.synapse.MessageContext;
import org.apache.synapse.commons.json.JsonUtil;
import org.apache.synapse.core.axis2.Axis2MessageContext;
import org.apache.synapse.core.axis2.Axis2Sender;
import org.apache.synapse.transport.passthru.util.RelayUtils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.mockito.MockedStatic;
import org.wso2.carbon.apimgt.gateway.handlers.security.AuthenticationContext;

/**
 * The WSO2 adapter over mocked Synapse/Axis2 message contexts (mocks only here, in a unit test),
 * with a real core agent streaming to an in-process fake sidecar: what the handler reads ends up
 * decoded on the sidecar side.
 */
class VigieSynapseHandlerTest {
    private final ManualClock clock = new ManualClock();
    private FakeSidecar sidecar;
    private VigieAgent agent;
    private VigieSynapseHandler handler;

    /** A Synapse context and its Axis2 context, both backed by maps. */
    static final class Ctx {
        final Map<String, Object> syn = new HashMap<>();
        final Map<String, Object> axis = new HashMap<>();
        final Axis2MessageContext ctx = mock(Axis2MessageContext.class);
        final org.apache.axis2.context.MessageContext axis2 = mock(org.apache.axis2.context.MessageContext.class);

        Ctx() {
            when(ctx.getAxis2MessageContext()).thenReturn(axis2);
            when(ctx.getProperty(anyString())).thenAnswer(i -> syn.get(i.getArgument(0, String.class)));
            doAnswer(i -> syn.put(i.getArgument(0), i.getArgument(1))).when(ctx).setProperty(anyString(), any());
            when(axis2.getProperty(anyString())).thenAnswer(i -> axis.get(i.getArgument(0, String.class)));
            doAnswer(i -> axis.put(i.getArgument(0), i.getArgument(1))).when(axis2).setProperty(anyString(), any());
            doAnswer(i -> axis.remove(i.getArgument(0, String.class))).when(axis2).removeProperty(anyString());
        }
    }

    @BeforeEach
    void start() throws Exception {
        sidecar = new FakeSidecar("wso2-" + System.nanoTime());
        agent = VigieAgent.builder().clock(clock).startThread(false).grpcChannel(sidecar::channel).flushIntervalMs(1).build();
        handler = new VigieSynapseHandler(agent, clock);
    }

    @AfterEach
    void stop() {
        agent.close();
        sidecar.close();
    }

    private BatchDecoder.Event lastEvent() {
        agent.step();
        clock.advanceMillis(1);
        agent.step();
        return sidecar.last().events.get(sidecar.last().events.size() - 1);
    }

    private static AuthenticationContext auth() {
        AuthenticationContext a = mock(AuthenticationContext.class);
        when(a.getApplicationUUID()).thenReturn("87c8da4c-aa3f-43d3-89ac-dc3dc3b19d3e");
        when(a.getApplicationName()).thenReturn("DefaultApplication");
        when(a.getSubscriber()).thenReturn("admin");
        when(a.getTier()).thenReturn("Gold");
        when(a.getKeyType()).thenReturn("SANDBOX");
        return a;
    }

    @Test
    void readsWhatWso2ComputedIntoOneEvent() {
        Ctx c = new Ctx();
        long t0 = clock.wallMicros();
        assertTrue(handler.handleRequestInFlow(c.ctx));
        c.syn.put("api.ut.api", "PizzaShackAPI");
        c.syn.put("api.ut.version", "1.0.0");
        c.syn.put("api.ut.context", "/pizzashack/1.0.0");
        c.syn.put("API_ELECTED_RESOURCE", "/menu");
        c.syn.put("api.ut.HTTP_METHOD", "GET");
        c.syn.put("REST_FULL_REQUEST_PATH", "/pizzashack/1.0.0/menu?size=2");
        c.syn.put("__API_AUTH_CONTEXT", auth());
        c.syn.put("api.analytics.cacheHit", Boolean.TRUE);
        clock.advanceMillis(2);
        assertTrue(handler.handleRequestOutFlow(c.ctx));
        clock.advanceMillis(30);
        assertTrue(handler.handleResponseInFlow(c.ctx));
        clock.advanceMillis(1);
        c.axis.put("HTTP_SC", 200);
        c.axis.put("TRANSPORT_HEADERS", Map.of("Content-Length", "2187"));
        assertTrue(handler.handleResponseOutFlow(c.ctx));

        BatchDecoder.Event e = lastEvent();
        assertEquals(t0, e.number(Column.EVENT_TIME_US));
        assertEquals("87c8da4c-aa3f-43d3-89ac-dc3dc3b19d3e", e.string(Column.APPLICATION_ID));
        assertEquals("DefaultApplication", e.string(Column.APPLICATION_NAME));
        assertEquals("admin", e.string(Column.APPLICATION_OWNER));
        assertEquals("PizzaShackAPI", e.string(Column.API_NAME));
        assertEquals("1.0.0", e.string(Column.API_VERSION));
        assertEquals("/pizzashack/1.0.0", e.string(Column.API_CONTEXT));
        assertEquals("/menu", e.string(Column.RESOURCE_TEMPLATE));
        assertEquals("Gold", e.string(Column.SUBSCRIPTION_TIER));
        assertEquals(HttpMethods.GET, e.number(Column.HTTP_METHOD));
        assertEquals(200, e.number(Column.HTTP_STATUS));
        assertEquals(0, e.number(Column.ERROR_CODE));
        assertEquals(33_000, e.number(Column.LATENCY_US));
        assertEquals(30_000, e.number(Column.BACKEND_LATENCY_US));
        assertEquals(2187, e.number(Column.RESPONSE_BYTES));
        assertEquals(-1, e.number(Column.REQUEST_BYTES));
        assertEquals(KeyTypes.SANDBOX, e.number(Column.KEY_TYPE));
        assertEquals(SynapseCapture.fnv1a64("/pizzashack/1.0.0/menu?size=2"), e.number(Column.URI_HASH));
        assertEquals(EventFlags.CACHE_HIT, e.number(Column.FLAGS));
    }

    @Test
    void httpStatusAndErrorCodeMayBeStringsAndFaultsAreFlagged() {
        Ctx c = new Ctx();
        c.syn.put("api.ut.api", "Orders");
        c.syn.put("ERROR_CODE", "900803");
        c.syn.put("THROTTLED_OUT_REASON", "APPLICATION_LIMIT_EXCEEDED");
        c.axis.put("HTTP_SC", "429");
        handler.handleResponseOutFlow(c.ctx);
        BatchDecoder.Event e = lastEvent();
        assertEquals(429, e.number(Column.HTTP_STATUS));
        assertEquals(900803, e.number(Column.ERROR_CODE));
        assertEquals(EventFlags.THROTTLED | EventFlags.FAULT, e.number(Column.FLAGS));

        Ctx d = new Ctx();
        d.syn.put("api.ut.api", "Orders");
        d.syn.put("ERROR_CODE", 101503);
        d.axis.put("HTTP_SC", 503);
        handler.handleResponseOutFlow(d.ctx);
        e = lastEvent();
        assertEquals(503, e.number(Column.HTTP_STATUS));
        assertEquals(101503, e.number(Column.ERROR_CODE));
        assertEquals(EventFlags.FAULT, e.number(Column.FLAGS));
    }

    @Test
    void throttledComesFromTheCodeNotFromThrottledOutReason() {
        Ctx c = new Ctx();
        c.syn.put("api.ut.api", "Orders");
        c.syn.put("ERROR_CODE", 101503); // an exception path: WSO2 sets HARD_LIMIT_EXCEEDED and throttles nothing
        c.syn.put("THROTTLED_OUT_REASON", "HARD_LIMIT_EXCEEDED");
        c.axis.put("HTTP_SC", 503);
        handler.handleResponseOutFlow(c.ctx);
        assertEquals(EventFlags.FAULT, lastEvent().number(Column.FLAGS));

        Ctx backend429 = new Ctx(); // a backend's own 429: no WSO2 code, not throttling
        backend429.syn.put("api.ut.api", "Orders");
        backend429.axis.put("HTTP_SC", 429);
        handler.handleResponseOutFlow(backend429.ctx);
        assertEquals(0, lastEvent().number(Column.FLAGS));

        Ctx burst = new Ctx();
        burst.syn.put("api.ut.api", "Orders");
        burst.syn.put("ERROR_CODE", "900807");
        burst.axis.put("HTTP_SC", 429);
        handler.handleResponseOutFlow(burst.ctx);
        assertEquals(EventFlags.THROTTLED | EventFlags.FAULT, lastEvent().number(Column.FLAGS));
    }

    @Test
    void absentPropertiesGiveAbsentValues() {
        Ctx c = new Ctx();
        c.syn.put("api.ut.api", "Orders");
        c.syn.put("SYNAPSE_REST_API_VERSION", "v2");
        c.syn.put("AM_KEY_TYPE", "PRODUCTION");
        c.syn.put("api.ut.application.name", "mobile");
        c.axis.put("HTTP_METHOD", "delete");
        c.axis.put("HTTP_SC", "not a number");
        handler.handleResponseOutFlow(c.ctx);
        BatchDecoder.Event e = lastEvent();
        assertEquals("", e.string(Column.APPLICATION_ID));
        assertEquals("mobile", e.string(Column.APPLICATION_NAME));
        assertEquals("v2", e.string(Column.API_VERSION));
        assertEquals("", e.string(Column.RESOURCE_TEMPLATE));
        assertEquals(HttpMethods.DELETE, e.number(Column.HTTP_METHOD));
        assertEquals(0, e.number(Column.HTTP_STATUS));
        assertEquals(KeyTypes.PRODUCTION, e.number(Column.KEY_TYPE));
        assertEquals(0, e.number(Column.LATENCY_US));
        assertEquals(0, e.number(Column.BACKEND_LATENCY_US));
        assertEquals(-1, e.number(Column.RESPONSE_BYTES));
        assertEquals(0, e.number(Column.URI_HASH));
        assertEquals(0, e.number(Column.FLAGS));
        assertEquals(clock.wallMicros() - 1000, e.number(Column.EVENT_TIME_US));
    }

    @Test
    void anAuthenticationFailureIsRecordedForItsApiWithNoApplication() {
        Ctx c = new Ctx();
        handler.handleRequestInFlow(c.ctx);
        // what APIAuthenticationHandler leaves when it refuses a key: no api.ut.*, Synapse's dispatch only
        c.syn.put("REST_API_CONTEXT", "/pizzashack/1.0.0");
        c.syn.put("SYNAPSE_REST_API_VERSION", "1.0.0");
        c.syn.put("SYNAPSE_REST_API", "admin--PizzaShackAPI:v1.0.0");
        c.syn.put("REST_METHOD", "GET");
        c.syn.put("ERROR_CODE", 900901);
        c.syn.put("AM_KEY_TYPE", "PRODUCTION");
        c.syn.put("api.ut.application.name", "leftover");
        c.axis.put("HTTP_SC", 401);
        clock.advanceMillis(3);
        handler.handleResponseOutFlow(c.ctx);
        BatchDecoder.Event e = lastEvent();
        assertEquals("PizzaShackAPI", e.string(Column.API_NAME));
        assertEquals("1.0.0", e.string(Column.API_VERSION));
        assertEquals("/pizzashack/1.0.0", e.string(Column.API_CONTEXT));
        assertEquals("", e.string(Column.APPLICATION_ID), "no application: counted for the API only");
        assertEquals("", e.string(Column.APPLICATION_NAME));
        assertEquals(KeyTypes.UNSPECIFIED, e.number(Column.KEY_TYPE));
        assertEquals(401, e.number(Column.HTTP_STATUS));
        assertEquals(900901, e.number(Column.ERROR_CODE));
        assertEquals(HttpMethods.GET, e.number(Column.HTTP_METHOD));
        assertEquals(3_000, e.number(Column.LATENCY_US));
        assertEquals(EventFlags.FAULT, e.number(Column.FLAGS));
    }

    @Test
    void aRequestMatchingNoResourceIsRecordedWithItsApiAndTheVersionFromSynapseRestApi() {
        Ctx c = new Ctx();
        c.syn.put("REST_API_CONTEXT", "/t/acme.com/orders/v2");
        c.syn.put("SYNAPSE_REST_API", "alice-AT-acme.com--Orders:vv2");
        c.syn.put("ERROR_CODE", 404);
        c.axis.put("HTTP_SC", 404);
        handler.handleResponseOutFlow(c.ctx);
        BatchDecoder.Event e = lastEvent();
        assertEquals("Orders", e.string(Column.API_NAME));
        assertEquals("v2", e.string(Column.API_VERSION));
        assertEquals("/t/acme.com/orders/v2", e.string(Column.API_CONTEXT));
        assertEquals(404, e.number(Column.HTTP_STATUS));
        assertEquals(0, agent.counters().unmatched);
    }

    @Test
    void withOnlyTheContextTheContextNamesTheApi() {
        Ctx c = new Ctx();
        c.syn.put("REST_API_CONTEXT", "/legacy");
        c.axis.put("HTTP_SC", 405);
        handler.handleResponseOutFlow(c.ctx);
        BatchDecoder.Event e = lastEvent();
        assertEquals("/legacy", e.string(Column.API_NAME));
        assertEquals("/legacy", e.string(Column.API_CONTEXT));
        assertEquals(405, e.number(Column.HTTP_STATUS));
    }

    @Test
    void aRequestMatchingNoApiIsCountedNotRecorded() throws Exception {
        Ctx c = new Ctx();
        c.axis.put("HTTP_SC", 404);
        handler.handleResponseOutFlow(c.ctx);
        assertEquals(0, agent.counters().offered);
        assertEquals(1, agent.counters().unmatched);
        agent.step();
        clock.advanceMillis(5_000);
        agent.step();
        io.vigie.wire.v1.GatewayReport report = sidecar.last().received.stream()
                .filter(io.vigie.wire.v1.GatewayMessage::hasReport).map(io.vigie.wire.v1.GatewayMessage::getReport)
                .reduce((x, y) -> y).orElseThrow();
        assertEquals(1, report.getUnmatchedRequests(), "the sidecar is told");
    }

    @Test
    void requestsMatchingNoApiAreReportedByPathPrefix() {
        for (String path : new String[] {"/wp-admin/setup.php", "/wp-admin/", "/.env"}) {
            Ctx c = new Ctx();
            c.syn.put("REST_FULL_REQUEST_PATH", path);
            c.axis.put("HTTP_SC", 404);
            handler.handleResponseOutFlow(c.ctx);
        }
        Ctx noDispatch = new Ctx(); // Synapse's dispatch left no path: the URL as received
        noDispatch.axis.put("TransportInURL", "/wp-admin/x");
        handler.handleResponseOutFlow(noDispatch.ctx);
        assertEquals(0, agent.counters().offered);
        assertEquals(4, agent.counters().unmatched);
        agent.step();
        clock.advanceMillis(5_000);
        agent.step();
        io.vigie.wire.v1.GatewayReport report = sidecar.last().received.stream()
                .filter(io.vigie.wire.v1.GatewayMessage::hasReport).map(io.vigie.wire.v1.GatewayMessage::getReport)
                .reduce((x, y) -> y).orElseThrow();
        Map<String, Long> byPrefix = new HashMap<>();
        report.getUnmatchedPrefixesList().forEach(p -> byPrefix.put(p.getPrefix(), p.getRequests()));
        assertEquals(Map.of("/wp-admin", 3L, "/.env", 1L), byPrefix);
    }

    @Test
    void theTenantComesFromTheApisContextAndTheApiIdFromWso2sApiUuid() {
        Ctx tenant = new Ctx();
        tenant.syn.put("REST_API_CONTEXT", "/t/acme.com/orders/v2");
        tenant.syn.put("SYNAPSE_REST_API", "alice-AT-acme.com--Orders:vv2");
        tenant.syn.put("API_UUID", "6f1d0b2c-5a4e-4c1b-9d7e-0a1b2c3d4e5f");
        tenant.syn.put("ERROR_CODE", 900901); // an authentication failure: API_UUID is set before authentication
        tenant.axis.put("HTTP_SC", 401);
        handler.handleResponseOutFlow(tenant.ctx);
        BatchDecoder.Event e = lastEvent();
        assertEquals("acme.com", e.string(Column.TENANT));
        assertEquals("6f1d0b2c-5a4e-4c1b-9d7e-0a1b2c3d4e5f", e.string(Column.API_ID));

        Ctx superTenant = new Ctx();
        superTenant.syn.put("api.ut.api", "PizzaShackAPI");
        superTenant.syn.put("api.ut.version", "1.0.0");
        superTenant.syn.put("api.ut.context", "/pizzashack/1.0.0");
        superTenant.syn.put("REST_API_CONTEXT", "/pizzashack/1.0.0");
        superTenant.axis.put("HTTP_SC", 200);
        handler.handleResponseOutFlow(superTenant.ctx);
        e = lastEvent();
        assertEquals("carbon.super", e.string(Column.TENANT));
        assertEquals("", e.string(Column.API_ID), "no API_UUID: unknown");

        Ctx onlyProvider = new Ctx(); // no context at all (not seen from WSO2): the provider's domain
        onlyProvider.syn.put("api.ut.api", "Orders");
        onlyProvider.syn.put("api.ut.apiPublisher", "bob@globex.example");
        onlyProvider.axis.put("HTTP_SC", 200);
        handler.handleResponseOutFlow(onlyProvider.ctx);
        assertEquals("globex.example", lastEvent().string(Column.TENANT));
    }

    @Test
    void theBackendsStatusIsKeptApartFromTheStatusSentToTheClient() {
        Ctx c = request();
        handler.handleRequestOutFlow(c.ctx);
        c.axis.put("HTTP_SC", 500); // the backend answered 500 ...
        handler.handleResponseInFlow(c.ctx);
        c.axis.put("HTTP_SC", "502"); // ... and a mediation sent 502 to the client
        handler.handleResponseOutFlow(c.ctx);
        BatchDecoder.Event e = lastEvent();
        assertEquals(502, e.number(Column.HTTP_STATUS), "proxyResponseCode");
        assertEquals(500, e.number(Column.TARGET_STATUS), "targetResponseCode");

        Ctx fault = request(); // the backend never answered (connection refused): 0, not the client's 503
        fault.syn.put("ERROR_CODE", 101503);
        fault.axis.put("HTTP_SC", 503);
        handler.handleResponseOutFlow(fault.ctx);
        assertEquals(0, lastEvent().number(Column.TARGET_STATUS));

        Ctx analytics = request(); // only WSO2's analytics handler saw the response in-flow
        analytics.syn.put("api.analytics.backend.response_code", "204");
        analytics.axis.put("HTTP_SC", 204);
        handler.handleResponseOutFlow(analytics.ctx);
        assertEquals(204, lastEvent().number(Column.TARGET_STATUS));

        Ctx absurd = request();
        absurd.syn.put("api.analytics.backend.response_code", 1_000_000);
        handler.handleResponseOutFlow(absurd.ctx);
        assertEquals(0, lastEvent().number(Column.TARGET_STATUS), "out of the uint16 range: unknown");
    }

    /** A request's in-flow with these transport headers and remote address, then its answer. */
    private BatchDecoder.Event clientOf(VigieSynapseHandler h, String xff, String remote, String analyticsIp) {
        Ctx c = new Ctx();
        Map<String, Object> headers = new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        if (xff != null) {
            headers.put("x-forwarded-for", xff);
        }
        c.axis.put("TRANSPORT_HEADERS", headers);
        c.axis.put("REMOTE_ADDR", remote);
        if (analyticsIp != null) {
            c.syn.put("api.analytics.user.ip", analyticsIp);
        }
        h.handleRequestInFlow(c.ctx);
        c.syn.put("api.ut.api", "PizzaShackAPI");
        c.syn.put("REST_API_CONTEXT", "/pizzashack/1.0.0");
        // the response out-flow has the backend's headers: the address was read on the request in-flow
        c.axis.put("TRANSPORT_HEADERS", Map.of("X-Forwarded-For", "198.51.100.99"));
        c.axis.remove("REMOTE_ADDR");
        c.axis.put("HTTP_SC", 200);
        h.handleResponseOutFlow(c.ctx);
        return lastEvent();
    }

    private static String hashOf(io.vigie.gateway.ClientIp ip, String address) {
        return io.vigie.gateway.wire.BatchEncoder.hashed(ip.hash(address, 0, address.length()));
    }

    @Test
    void theClientsAddressIsReadAsWso2ReadsItAndHashedWithTheSalt() {
        agent.close();
        io.vigie.gateway.ClientIp salted = io.vigie.gateway.ClientIp.hashed("pepper");
        agent = VigieAgent.builder().clock(clock).startThread(false).grpcChannel(sidecar::channel).flushIntervalMs(1)
                .clientIp(salted).build();
        VigieSynapseHandler h = new VigieSynapseHandler(agent, clock);
        assertEquals(hashOf(salted, "203.0.113.7"), clientOf(h, "203.0.113.7, 10.0.0.1", "10.0.0.2", null)
                .string(Column.CLIENT_IP), "the first X-Forwarded-For entry");
        assertEquals(hashOf(salted, "10.0.0.2"), clientOf(h, null, "10.0.0.2", null).string(Column.CLIENT_IP),
                "else the remote address");
        assertEquals(hashOf(salted, "192.0.2.1"), clientOf(h, "203.0.113.7", "10.0.0.2", "192.0.2.1")
                .string(Column.CLIENT_IP), "what WSO2's analytics already read comes first");
        assertEquals(hashOf(salted, "203.0.113.7"), clientOf(h, "203.0.113.7:4711", null, null).string(Column.CLIENT_IP));
        assertEquals("", clientOf(h, null, null, null).string(Column.CLIENT_IP), "no address: none");
        assertTrue(hashOf(salted, "203.0.113.7").matches("h:[0-9a-f]{16}"));
    }

    @Test
    void theClientsAddressInPlainOrNotAtAll() {
        agent.close();
        agent = VigieAgent.builder().clock(clock).startThread(false).grpcChannel(sidecar::channel).flushIntervalMs(1)
                .clientIp(io.vigie.gateway.ClientIp.plain()).build();
        VigieSynapseHandler plain = new VigieSynapseHandler(agent, clock);
        assertEquals("2001:db8::7", clientOf(plain, " 2001:db8::7 , 10.0.0.1", "10.0.0.2", null).string(Column.CLIENT_IP));
        String absurd = "1".repeat(100_000);
        assertEquals("1".repeat(io.vigie.gateway.ClientIp.MAX_CHARS),
                clientOf(plain, absurd, null, null).string(Column.CLIENT_IP), "bounded");
        agent.close();
        agent = VigieAgent.builder().clock(clock).startThread(false).grpcChannel(sidecar::channel).flushIntervalMs(1)
                .clientIp(io.vigie.gateway.ClientIp.off()).build();
        VigieSynapseHandler off = new VigieSynapseHandler(agent, clock);
        assertEquals("", clientOf(off, "203.0.113.7", "10.0.0.2", null).string(Column.CLIENT_IP));
        assertEquals(0, agent.counters().adapterErrors);
    }

    @Test
    void trafficThatIsNoApiIsNotRecorded() {
        Ctx c = new Ctx();
        c.axis.put("HTTP_SC", 200);
        handler.handleResponseOutFlow(c.ctx);
        assertEquals(0, agent.counters().offered);
    }

    @Test
    void neverLetsAnExceptionEscape() {
        MessageContext broken = mock(Axis2MessageContext.class);
        when(broken.getProperty(anyString())).thenThrow(new IllegalStateException("boom"));
        doAnswer(i -> {
            throw new IllegalStateException("boom");
        }).when(broken).setProperty(anyString(), any());
        assertTrue(handler.handleRequestInFlow(broken));
        assertTrue(handler.handleRequestOutFlow(broken));
        assertTrue(handler.handleResponseInFlow(broken));
        assertTrue(handler.handleResponseOutFlow(broken));
        assertTrue(handler.handleError(broken));
        assertEquals(4, agent.counters().adapterErrors);

        Ctx odd = new Ctx(); // wrong types everywhere
        odd.syn.put("api.ut.api", "Orders");
        odd.syn.put("api.ut.version", 42);
        odd.syn.put("__API_AUTH_CONTEXT", "not an auth context");
        odd.syn.put("vigie.request.start.us", "yesterday");
        odd.axis.put("TRANSPORT_HEADERS", "not a map");
        assertTrue(handler.handleResponseOutFlow(odd.ctx));
        assertEquals("", lastEvent().string(Column.API_VERSION));

        VigieSynapseHandler disabled = new VigieSynapseHandler(null, clock);
        assertTrue(disabled.handleRequestInFlow(broken));
        assertTrue(disabled.handleRequestOutFlow(broken));
        assertTrue(disabled.handleResponseOutFlow(broken));
    }

    private void directive(DirectiveMode mode, DirectiveAction action, int limit) {
        DirectiveUpdate u = DirectiveUpdate.newBuilder().setFull(true).setVersion(1)
                .addUpserts(Directive.newBuilder().setId("d1").setMode(mode).setAction(action)
                        .setApplicationId("87c8da4c-aa3f-43d3-89ac-dc3dc3b19d3e").setApiName("PizzaShackAPI")
                        .setLimitRequests(limit).setLimitPeriodSeconds(60).setReason("retry storm")
                        .setExpiresAtUs(clock.wallMicros() + 60_000_000L))
                .build();
        sidecar.initialDirectives = u;
        agent.step();
        assertEquals(1, agent.directives().version());
    }

    private Ctx request() {
        Ctx c = new Ctx();
        c.syn.put("api.ut.api", "PizzaShackAPI");
        c.syn.put("api.ut.version", "1.0.0");
        c.syn.put("__API_AUTH_CONTEXT", auth());
        return c;
    }

    @Test
    void anEnforcedBlockAnswers403WithWso2s4xBodyAndDropsTheCredentialHeaders() {
        directive(DirectiveMode.DIRECTIVE_MODE_ENFORCE, DirectiveAction.DIRECTIVE_ACTION_BLOCK, 0);
        Ctx c = request();
        Map<String, Object> headers = new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        headers.put("Authorization", "Bearer secret");
        headers.put("Host", "gw:8243");
        headers.put("Accept", "*/*");
        headers.put("X-JWT-Assertion", "eyJ.backend.jwt");
        headers.put("X-Request-Id", "r-1");
        c.axis.put("TRANSPORT_HEADERS", headers);
        String body = "{\"code\":\"900805\",\"message\":\"Message blocked\",\"description\":"
                + "\"You have been blocked from accessing the resource (vigie directive d1: retry storm)\"}";
        try (MockedStatic<Axis2Sender> sender = mockStatic(Axis2Sender.class);
                MockedStatic<JsonUtil> json = mockStatic(JsonUtil.class);
                MockedStatic<RelayUtils> relay = mockStatic(RelayUtils.class)) {
            // Synapse's sendBack runs the handlers' response out-flow: so does this stand-in
            sender.when(() -> Axis2Sender.sendBack(c.ctx)).thenAnswer(i -> handler.handleResponseOutFlow(c.ctx));
            assertFalse(handler.handleRequestOutFlow(c.ctx), "the request stops here");
            json.verify(() -> JsonUtil.getNewJsonPayload(c.axis2, body, true, true));
            relay.verify(() -> RelayUtils.discardRequestMessage(c.axis2));
            sender.verify(() -> Axis2Sender.sendBack(c.ctx));
        }
        assertEquals(403, c.axis.get("HTTP_SC"));
        assertEquals("application/json", c.axis.get("messageType"));
        assertEquals(Boolean.TRUE, c.axis.get("message.builder.invoked"));
        assertEquals(900805, c.syn.get("ERROR_CODE"));
        assertEquals("Message blocked", c.syn.get("ERROR_MESSAGE"));
        assertEquals("You have been blocked from accessing the resource (vigie directive d1: retry storm)",
                c.syn.get("ERROR_DETAIL"));
        assertEquals(java.util.Set.of("X-Request-Id", "Content-Type"), headers.keySet());
        BatchDecoder.Event e = lastEvent();
        assertEquals(403, e.number(Column.HTTP_STATUS));
        assertEquals(900805, e.number(Column.ERROR_CODE));
        // 900805 lies in 900800-900899: the contract flags it throttled as well
        assertEquals(EventFlags.REFUSED_BY_DIRECTIVE | EventFlags.FAULT | EventFlags.THROTTLED, e.number(Column.FLAGS));
        assertEquals(1, agent.directives().hits().get(0).getEnforcedHits());
    }

    @Test
    void anEnforcedLimitAnswers429WithRetryAfterNextAccessTimeAndTheApisCorsHeaders() {
        directive(DirectiveMode.DIRECTIVE_MODE_ENFORCE, DirectiveAction.DIRECTIVE_ACTION_LIMIT, 1);
        Ctx first = request();
        assertTrue(handler.handleRequestOutFlow(first.ctx));
        Ctx c = request();
        c.syn.put("CORSConfiguration.Enabled", Boolean.TRUE);
        c.syn.put("Access-Control-Allow-Origin", "https://shop.example");
        c.syn.put("Access-Control-Allow-Methods", "GET,POST");
        c.syn.put("Access-Control-Allow-Credentials", "true");
        c.syn.put("api.ut.HTTP_METHOD", "GET");
        Map<String, Object> headers = new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        c.axis.put("TRANSPORT_HEADERS", headers);
        clock.advanceMillis(15_000);
        try (MockedStatic<Axis2Sender> sender = mockStatic(Axis2Sender.class);
                MockedStatic<JsonUtil> json = mockStatic(JsonUtil.class);
                MockedStatic<RelayUtils> relay = mockStatic(RelayUtils.class)) {
            assertFalse(handler.handleRequestOutFlow(c.ctx));
            sender.verify(() -> Axis2Sender.sendBack(c.ctx));
            relay.verify(() -> RelayUtils.discardRequestMessage(c.axis2));
            json.verify(() -> JsonUtil.getNewJsonPayload(eq(c.axis2),
                    org.mockito.ArgumentMatchers.matches("\\{\"code\":\"900806\",\"message\":\"Message throttled out\","
                            + "\"description\":\"You have exceeded your quota \\(vigie directive d1: retry storm\\)\","
                            + "\"nextAccessTime\":\"\\d{4}-\\w{3}-\\d{2} \\d{2}:\\d{2}:\\d{2}\\+0000 UTC\"\\}"),
                    eq(true), eq(true)));
        }
        assertEquals(429, c.axis.get("HTTP_SC"));
        assertEquals("45", headers.get("Retry-After"), "one token a minute, 15 s after the last one");
        assertEquals("https://shop.example", headers.get("Access-Control-Allow-Origin"));
        assertEquals("true", headers.get("Access-Control-Allow-Credentials"));
        assertEquals(null, headers.get("Access-Control-Allow-Methods"), "only for OPTIONS, as the sequence does");
    }

    @Test
    void aRefusalRecordsTheSizeOfTheAnswerItSentAndTheRequestsOwnSize() {
        directive(DirectiveMode.DIRECTIVE_MODE_ENFORCE, DirectiveAction.DIRECTIVE_ACTION_BLOCK, 0);
        Ctx c = request();
        Map<String, Object> headers = new java.util.TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        headers.put("Content-Length", "512"); // the request's: a POST of 512 bytes
        c.axis.put("TRANSPORT_HEADERS", headers);
        String body = "{\"code\":\"900805\",\"message\":\"Message blocked\",\"description\":"
                + "\"You have been blocked from accessing the resource (vigie directive d1: retry storm)\"}";
        try (MockedStatic<Axis2Sender> sender = mockStatic(Axis2Sender.class);
                MockedStatic<JsonUtil> json = mockStatic(JsonUtil.class);
                MockedStatic<RelayUtils> relay = mockStatic(RelayUtils.class)) {
            sender.when(() -> Axis2Sender.sendBack(c.ctx)).thenAnswer(i -> handler.handleResponseOutFlow(c.ctx));
            assertFalse(handler.handleRequestOutFlow(c.ctx));
            json.verify(() -> JsonUtil.getNewJsonPayload(c.axis2, body, true, true));
            relay.verify(() -> RelayUtils.discardRequestMessage(c.axis2));
        }
        BatchDecoder.Event e = lastEvent();
        assertEquals(body.getBytes(java.nio.charset.StandardCharsets.UTF_8).length, e.number(Column.RESPONSE_BYTES),
                "the refusal body's length, not the request's Content-Length");
        assertEquals(512, e.number(Column.REQUEST_BYTES));
    }

    @Test
    void aWso2FaultRecordsAnUnknownResponseSizeRatherThanTheRequestsContentLength() {
        Ctx c = new Ctx();
        c.syn.put("api.ut.api", "Orders");
        c.syn.put("ERROR_CODE", 900803); // WSO2's own throttling answer
        c.axis.put("HTTP_SC", 429);
        c.axis.put("TRANSPORT_HEADERS", Map.of("Content-Length", "2048"));
        handler.handleResponseOutFlow(c.ctx);
        BatchDecoder.Event e = lastEvent();
        assertEquals(-1, e.number(Column.RESPONSE_BYTES));
        assertEquals(2048, e.number(Column.REQUEST_BYTES));
    }

    @Test
    void aShadowDirectiveOnlyCounts() {
        directive(DirectiveMode.DIRECTIVE_MODE_SHADOW, DirectiveAction.DIRECTIVE_ACTION_BLOCK, 0);
        Ctx c = request();
        try (MockedStatic<Axis2Sender> sender = mockStatic(Axis2Sender.class)) {
            assertTrue(handler.handleRequestOutFlow(c.ctx));
            sender.verify(() -> Axis2Sender.sendBack(any()), never());
        }
        assertEquals(1, agent.directives().hits().get(0).getShadowHits());
        assertEquals(null, c.axis.get("HTTP_SC"));
    }

    @Test
    void aLimitIsConsultedOncePerRequestWhateverTheNumberOfSends() {
        directive(DirectiveMode.DIRECTIVE_MODE_ENFORCE, DirectiveAction.DIRECTIVE_ACTION_LIMIT, 2);
        Ctx c = request();
        for (int k = 0; k < 5; k++) {
            assertTrue(handler.handleRequestOutFlow(c.ctx));
        }
        assertEquals(1, agent.directives().hits().get(0).getPassed());
    }

    @Test
    void aRefusalThatCannotSetItsBodyStillRefusesWithoutOne() {
        directive(DirectiveMode.DIRECTIVE_MODE_ENFORCE, DirectiveAction.DIRECTIVE_ACTION_BLOCK, 0);
        Ctx c = request();
        try (MockedStatic<Axis2Sender> sender = mockStatic(Axis2Sender.class);
                MockedStatic<JsonUtil> json = mockStatic(JsonUtil.class);
                MockedStatic<RelayUtils> relay = mockStatic(RelayUtils.class)) {
            json.when(() -> JsonUtil.getNewJsonPayload(any(), anyString(), anyBoolean(), anyBoolean()))
                    .thenThrow(new AxisFault("no JSON builder"));
            assertFalse(handler.handleRequestOutFlow(c.ctx), "never forwarded half-refused");
            sender.verify(() -> Axis2Sender.sendBack(c.ctx));
            relay.verify(() -> RelayUtils.discardRequestMessage(eq(c.axis2)));
        }
        assertEquals(403, c.axis.get("HTTP_SC"));
        assertEquals(Boolean.TRUE, c.axis.get("NO_ENTITY_BODY"));
        assertEquals(1, agent.counters().adapterErrors);
    }

    @Test
    void aRefusalWhoseSendFailsStopsTheRequestAndNeverThrows() {
        directive(DirectiveMode.DIRECTIVE_MODE_ENFORCE, DirectiveAction.DIRECTIVE_ACTION_BLOCK, 0);
        Ctx c = request();
        c.axis.put("TRANSPORT_HEADERS", Map.of("Authorization", "Bearer x")); // immutable: removal throws
        try (MockedStatic<Axis2Sender> sender = mockStatic(Axis2Sender.class);
                MockedStatic<JsonUtil> json = mockStatic(JsonUtil.class);
                MockedStatic<RelayUtils> relay = mockStatic(RelayUtils.class)) {
            sender.when(() -> Axis2Sender.sendBack(any())).thenThrow(new IllegalStateException("socket gone"));
            assertFalse(handler.handleRequestOutFlow(c.ctx), "stopped, not sent to the backend");
            relay.verify(() -> RelayUtils.discardRequestMessage(c.axis2), never());
            json.verify(() -> JsonUtil.getNewJsonPayload(any(), anyString(), anyBoolean(), anyBoolean()), never());
        }
        assertEquals(403, c.axis.get("HTTP_SC"));
        assertEquals(2, agent.counters().adapterErrors);
    }

    @Test
    void numbersAreReadWithoutExceptions() {
        assertEquals(200, SynapseCapture.integer("200", -1));
        assertEquals(-5, SynapseCapture.integer(" -5 ", 0));
        assertEquals(-1, SynapseCapture.integer("2x", -1));
        assertEquals(-1, SynapseCapture.integer("-", -1));
        assertEquals(-1, SynapseCapture.integer("", -1));
        assertEquals(-1, SynapseCapture.integer(null, -1));
        assertEquals(7, SynapseCapture.integer(7L, -1));
    }
}
