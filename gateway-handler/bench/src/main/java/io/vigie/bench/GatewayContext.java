package io.vigie.bench;

import io.vigie.gateway.ClientIp;
import io.vigie.gateway.EventFlags;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.KeyTypes;
import io.vigie.gateway.RequestRecord;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What the WSO2 adapter reads on the response out-flow, as a property map like Synapse's, and
 * the capture step: the same ~20 property reads and conversions as
 * {@code io.vigie.wso2.VigieSynapseHandler.capture} (kept in the bench so it depends on the core
 * only; the handler's own reads are unit-tested in the wso2 module).
 */
final class GatewayContext {
    /** The client-IP capture of the naive design's encoder: hashed with a salt. */
    static final ClientIp CLIENT_IP = ClientIp.hashed("bench-salt");
    /** The adapter's tenant-per-context cache. */
    static final Map<String, String> TENANTS = new ConcurrentHashMap<>();
    final Map<String, Object> props = new HashMap<>();
    final Map<String, Object> axis2 = new HashMap<>();
    final Map<String, Object> requestHeaders = new HashMap<>();

    GatewayContext(int k) {
        props.put("api.ut.api", "PizzaShackAPI");
        props.put("api.ut.version", "1.0.0");
        props.put("api.ut.context", "/pizzashack/1.0.0");
        props.put("API_ELECTED_RESOURCE", "/menu");
        props.put("api.ut.HTTP_METHOD", "GET");
        props.put("REST_FULL_REQUEST_PATH", "/pizzashack/1.0.0/menu?page=" + k);
        props.put("app.uuid", "87c8da4c-aa3f-43d3-89ac-dc3dc3b19d" + (10 + k % 90));
        props.put("app.name", "Application " + k % 90);
        props.put("app.owner", "admin");
        props.put("sub.tier", "Gold");
        props.put("key.type", "PRODUCTION");
        props.put("vigie.request.start.us", 1_700_000_000_000_000L);
        props.put("vigie.backend.start.us", 1_700_000_000_001_000L);
        props.put("vigie.backend.end.us", 1_700_000_000_004_000L);
        props.put("REST_API_CONTEXT", "/t/acme.com/pizzashack/1.0.0");
        props.put("API_UUID", "6f1d0b2c-5a4e-4c1b-9d7e-0a1b2c3d4e" + (10 + k % 90));
        props.put("vigie.backend.status", 200);
        requestHeaders.put("X-Forwarded-For", "203.0.113." + (k % 250) + ", 10.0.0.1");
        axis2.put("HTTP_SC", 200);
        axis2.put("TRANSPORT_HEADERS", Map.of("Content-Length", "2187"));
    }

    /** Fills {@code r} from the context, as the adapter does. */
    void capture(RequestRecord r, long nowUs) {
        r.apiName(str(props.get("api.ut.api"))).apiVersion(str(props.get("api.ut.version")))
                .apiContext(str(props.get("api.ut.context"))).resourceTemplate(str(props.get("API_ELECTED_RESOURCE")))
                .httpMethod(HttpMethods.of(str(props.get("api.ut.HTTP_METHOD"))))
                .applicationId(str(props.get("app.uuid"))).applicationName(str(props.get("app.name")))
                .applicationOwner(str(props.get("app.owner"))).subscriptionTier(str(props.get("sub.tier")))
                .keyType(KeyTypes.of(str(props.get("key.type"))));
        int flags = 0;
        if (props.get("ERROR_CODE") != null) {
            flags |= EventFlags.FAULT;
        }
        if (props.get("THROTTLED_OUT_REASON") != null) {
            flags |= EventFlags.THROTTLED;
        }
        r.flags(flags);
        Object sc = axis2.get("HTTP_SC");
        r.httpStatus(sc instanceof Integer ? (Integer) sc : 0);
        Object h = axis2.get("TRANSPORT_HEADERS");
        if (h instanceof Map) {
            Object cl = ((Map<?, ?>) h).get("Content-Length");
            r.responseBytes(cl instanceof String ? parse((String) cl) : -1);
        }
        long start = (Long) props.get("vigie.request.start.us");
        r.eventTimeUs(start).latencyUs(nowUs - start);
        r.backendLatencyUs((Long) props.get("vigie.backend.end.us") - (Long) props.get("vigie.backend.start.us"));
        // the request in-flow's client address source (the sender hashes it), the tenant, the API
        // id, the backend's status
        r.clientIp(str(requestHeaders.get("X-Forwarded-For")));
        String context = str(props.get("REST_API_CONTEXT"));
        if (context != null) {
            String t = TENANTS.get(context);
            if (t == null) {
                int at = context.indexOf("/t/");
                t = at < 0 ? "carbon.super" : context.substring(at + 3, context.indexOf('/', at + 3));
                TENANTS.put(context, t);
            }
            r.tenant(t);
        }
        r.apiId(str(props.get("API_UUID")));
        Object target = props.get("vigie.backend.status");
        r.targetStatus(target instanceof Integer ? (Integer) target : 0);
        Object path = props.get("REST_FULL_REQUEST_PATH");
        if (path instanceof String) {
            r.uriHash(fnv((String) path));
        }
    }

    String app() {
        return str(props.get("app.uuid"));
    }

    private static String str(Object o) {
        return o instanceof String ? (String) o : null;
    }

    private static long parse(String s) {
        long v = 0;
        for (int i = 0; i < s.length(); i++) {
            v = v * 10 + (s.charAt(i) - '0');
        }
        return v;
    }

    private static long fnv(String s) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < s.length(); i++) {
            h ^= s.charAt(i);
            h *= 0x100000001b3L;
        }
        return h;
    }
}
