package io.vigie.synapse;

import static io.vigie.synapse.SynapseNames.*;

import io.vigie.gateway.ClientIp;
import io.vigie.gateway.Clock;
import io.vigie.gateway.EventFlags;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.KeyTypes;
import io.vigie.gateway.RequestRecord;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.Wso2Codes;
import io.vigie.gateway.directive.Rule;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * What both Synapse adapters (WSO2 APIM 4.x, Apache Synapse 3) do with a message, written once:
 * note the times, consult the directive table once per request, and capture the finished request
 * into the agent's queue. The runtime's message context is read through a {@link MessageAccess};
 * who called comes from a {@link Consumers}.
 *
 * <p>Nothing here blocks, does I/O or allocates on the request path (the agent's record is
 * reused per thread). The adapters wrap each call in {@code try/catch (Throwable)} and hand what
 * they caught to {@link #failed}: the same things are caught everywhere, and nothing escapes into
 * mediation but a {@link VirtualMachineError}.
 */
public final class SynapseCapture<C> {
    private static final Logger LOG = Logger.getLogger(SynapseCapture.class.getName());

    private final VigieAgent agent;
    private final Clock clock;
    private final MessageAccess<C> access;
    private final Consumers<C> consumers;
    private final ApiNaming naming;
    private final Tenants tenants = new Tenants();

    public SynapseCapture(VigieAgent agent, Clock clock, MessageAccess<C> access, Consumers<C> consumers,
            ApiNaming naming) {
        this.agent = agent;
        this.clock = clock;
        this.access = access;
        this.consumers = consumers;
        this.naming = naming;
    }

    public VigieAgent agent() {
        return agent;
    }

    public Clock clock() {
        return clock;
    }

    public MessageAccess<C> access() {
        return access;
    }

    /**
     * Request in-flow: the request's start, and where the client's address is while the
     * transport headers are still the request's ({@link #clientAddress}): a reference to the
     * gateway's own string, no copy; the sender takes the address out of it and hashes it.
     */
    public void requestStarted(C ctx) {
        access.setProperty(ctx, START_US, clock.wallMicros());
        if (agent.clientIp().mode() != ClientIp.Mode.OFF) {
            String v = clientAddress(ctx);
            if (v != null) {
                access.setProperty(ctx, CLIENT_IP, v);
            }
        }
    }

    /**
     * Where the client's address is, as WSO2's analytics reads it: what it already read
     * ({@code api.analytics.user.ip}), else the {@code X-Forwarded-For} request header (its first
     * entry is taken by {@link ClientIp#addressRange}), else the connection's remote address.
     */
    String clientAddress(C ctx) {
        String v = string(access.property(ctx, USER_IP));
        if (v != null) {
            return v;
        }
        Object headers = access.axis2Property(ctx, TRANSPORT_HEADERS);
        if (headers instanceof Map) {
            Map<?, ?> h = (Map<?, ?>) headers;
            Object xff = h.get(X_FORWARDED_FOR);
            if (xff == null) {
                xff = h.get("x-forwarded-for"); // a map that is not case-insensitive
            }
            v = string(xff);
            if (v != null) {
                return v;
            }
        }
        return string(access.axis2Property(ctx, REMOTE_ADDR));
    }

    /** Request out-flow, just before the backend call. */
    public void backendStarted(C ctx) {
        access.setProperty(ctx, BACKEND_START_US, clock.wallMicros());
    }

    /** Response in-flow: the backend answered; its status, before any mediation changes it. */
    public void backendEnded(C ctx) {
        access.setProperty(ctx, BACKEND_END_US, clock.wallMicros());
        Object status = access.axis2Property(ctx, HTTP_SC);
        if (status != null) {
            access.setProperty(ctx, BACKEND_STATUS, status);
        }
    }

    /**
     * The directive refusing this request, or {@code null} to let it through; consulted once per
     * request whatever the number of sends (later calls return {@code null}).
     */
    public Rule check(C ctx) {
        if (access.property(ctx, CHECKED) != null) {
            return null;
        }
        access.setProperty(ctx, CHECKED, Boolean.TRUE);
        String api = string(access.property(ctx, naming.apiNameProperty));
        String version = naming.apiVersionProperty == null ? null
                : string(access.property(ctx, naming.apiVersionProperty));
        return agent.check(consumers.applicationId(ctx), api, version);
    }

    /**
     * Reads the finished request (response or fault out-flow) into this thread's record and
     * offers it. Every request the gateway answers is recorded: WSO2 sets {@code api.ut.api}
     * only once it has authenticated the request, so an authentication failure or a request
     * matching no resource of its API is recorded from what Synapse's REST dispatch set
     * ({@code SYNAPSE_REST_API}, {@code REST_API_CONTEXT}, {@code SYNAPSE_REST_API_VERSION}),
     * with no application (the sidecar counts it for its API only). A request matching no API
     * at all is counted ({@code UnmatchedRequests}), not recorded.
     */
    public void capture(C ctx) {
        String api = string(access.property(ctx, naming.apiNameProperty));
        boolean authenticated = api != null;
        String version;
        if (authenticated) {
            version = naming.apiVersionProperty == null ? null
                    : string(access.property(ctx, naming.apiVersionProperty));
            if (version == null) {
                version = string(access.property(ctx, REST_API_VERSION));
            }
        } else {
            String restApi = string(access.property(ctx, REST_API_NAME));
            String restContext = string(access.property(ctx, REST_API_CONTEXT));
            if (restApi == null && restContext == null) {
                // no API's context matched the path: counted by its first segment
                String path = string(access.property(ctx, FULL_REQUEST_PATH));
                agent.countUnmatched(path != null ? path : string(access.axis2Property(ctx, TRANSPORT_IN_URL)));
                return;
            }
            // without SYNAPSE_REST_API the context names the API
            api = restApi != null ? SynapseRestApiName.name(restApi) : restContext;
            version = string(access.property(ctx, REST_API_VERSION));
            if (version == null && restApi != null) {
                version = SynapseRestApiName.version(restApi);
            }
        }
        long now = clock.wallMicros();
        RequestRecord r = agent.record().apiName(api).apiVersion(version);
        String restContext = string(access.property(ctx, REST_API_CONTEXT));
        String context = string(access.property(ctx, API_CONTEXT));
        r.apiContext(context != null ? context : restContext);
        // the tenant from the deployed API's context, as WSO2's analytics finds the API
        r.tenant(tenants.of(restContext != null ? restContext : context, string(access.property(ctx, API_PUBLISHER))));
        r.apiId(string(access.property(ctx, API_UUID)));
        r.clientIp(string(access.property(ctx, CLIENT_IP)));
        r.resourceTemplate(string(access.property(ctx, ELECTED_RESOURCE)));
        String method = string(access.property(ctx, HTTP_METHOD));
        if (method == null) {
            method = string(access.property(ctx, REST_METHOD));
        }
        if (method == null) {
            method = string(access.axis2Property(ctx, AXIS2_HTTP_METHOD));
        }
        r.httpMethod(HttpMethods.of(method));

        if (authenticated) { // an unauthenticated request has no application (nor key type)
            String keyType = consumers.describe(ctx, r);
            if (r.applicationName() == null) {
                r.applicationName(string(access.property(ctx, APPLICATION_NAME)));
            }
            if (keyType == null) {
                keyType = string(access.property(ctx, KEY_TYPE));
            }
            r.keyType(KeyTypes.of(keyType));
        }

        int flags = 0;
        Object errorCode = access.property(ctx, ERROR_CODE);
        int code = (int) integer(errorCode, 0);
        if (errorCode != null) {
            flags |= EventFlags.FAULT;
        }
        r.errorCode(code);
        Object cacheHit = access.property(ctx, CACHE_HIT);
        if (Boolean.TRUE.equals(cacheHit) || "true".equals(cacheHit)) {
            flags |= EventFlags.CACHE_HIT;
        }
        boolean refused = access.property(ctx, REFUSED) != null;
        if (refused) {
            flags |= EventFlags.REFUSED_BY_DIRECTIVE;
        }
        // throttled = a WSO2 throttling code or vigie's own refusal, nothing else: WSO2 also sets
        // THROTTLED_OUT_REASON (HARD_LIMIT_EXCEEDED) in exception paths that throttle nothing
        if (refused || Wso2Codes.isThrottling(code)) {
            flags |= EventFlags.THROTTLED;
        }
        r.flags(flags);

        r.httpStatus((int) integer(access.axis2Property(ctx, HTTP_SC), 0));
        // the backend's own status (analytics targetResponseCode) when it was called: vigie's,
        // else WSO2's analytics' reading of the response in-flow; a refusal never called it
        if (!refused) {
            Object backend = access.property(ctx, BACKEND_STATUS);
            if (backend == null) {
                backend = access.property(ctx, ANALYTICS_BACKEND_STATUS);
            }
            long target = integer(backend, 0);
            r.targetStatus(target > 0 && target <= 0xFFFF ? (int) target : 0);
        }
        Object headers = access.axis2Property(ctx, TRANSPORT_HEADERS);
        Object length = headers instanceof Map ? ((Map<?, ?>) headers).get("Content-Length") : null;
        if (refused || errorCode != null) {
            // an answer the gateway made itself (vigie's refusal, throttling, a fault): the
            // transport headers are still the request's, so their Content-Length is the request's
            r.requestBytes(integer(length, -1));
            // vigie knows its own answer's size; a WSO2 fault's payload is not serialized yet: unknown
            r.responseBytes(refused ? integer(access.property(ctx, REFUSAL_BYTES), -1) : -1);
        } else {
            r.responseBytes(integer(length, -1));
        }

        long start = integer(access.property(ctx, START_US), 0);
        if (start <= 0) {
            start = integer(access.property(ctx, ANALYTICS_REQUEST_START), 0) * 1000L;
        }
        if (start > 0) {
            r.eventTimeUs(start).latencyUs(Math.max(0, now - start));
        } else {
            r.eventTimeUs(now);
        }
        long backendStart = integer(access.property(ctx, BACKEND_START_US), 0);
        long backendEnd = integer(access.property(ctx, BACKEND_END_US), 0);
        if (backendStart <= 0 || backendEnd <= 0) {
            backendStart = integer(access.property(ctx, ANALYTICS_BACKEND_START), 0) * 1000L;
            backendEnd = integer(access.property(ctx, ANALYTICS_BACKEND_END), 0) * 1000L;
        }
        if (backendStart > 0 && backendEnd >= backendStart) {
            r.backendLatencyUs(backendEnd - backendStart);
        }
        Object path = access.property(ctx, FULL_REQUEST_PATH);
        if (path instanceof String) {
            r.uriHash(fnv1a64((String) path));
        }
        agent.offer(r);
    }

    /**
     * What an adapter does with anything it caught: counted ({@code AdapterErrors}) and logged
     * at FINE, the message going on as if vigie were absent. A {@link VirtualMachineError} (out of
     * memory, stack overflow) is rethrown: the JVM is failing, and hiding that in a counter would
     * not make the gateway healthier.
     */
    public void failed(Throwable t) {
        if (t instanceof VirtualMachineError) {
            throw (VirtualMachineError) t;
        }
        agent.countAdapterError();
        LOG.log(Level.FINE, "vigie: handler error (request unaffected)", t);
    }

    /** A non-empty String, else {@code null}. */
    public static String string(Object o) {
        if (o instanceof String) {
            String s = (String) o;
            return s.isEmpty() ? null : s;
        }
        return null;
    }

    /** An Integer/Long/String number as a long, without allocating; {@code def} otherwise. */
    public static long integer(Object o, long def) {
        if (o instanceof Number) {
            return ((Number) o).longValue();
        }
        if (o instanceof String) {
            String s = ((String) o).trim();
            int n = s.length();
            if (n == 0 || n > 18) {
                return def;
            }
            int i = 0;
            boolean negative = s.charAt(0) == '-';
            if (negative) {
                i = 1;
                if (n == 1) {
                    return def;
                }
            }
            long v = 0;
            for (; i < n; i++) {
                char c = s.charAt(i);
                if (c < '0' || c > '9') {
                    return def;
                }
                v = v * 10 + (c - '0');
            }
            return negative ? -v : v;
        }
        return def;
    }

    /** 64-bit FNV-1a over the UTF-16 code units of {@code s}; never 0 for a non-empty string. */
    public static long fnv1a64(String s) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            h ^= c & 0xFF;
            h *= 0x100000001b3L;
            h ^= c >>> 8;
            h *= 0x100000001b3L;
        }
        return h == 0 ? 1 : h;
    }
}
