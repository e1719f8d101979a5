package io.vigie.wso2;

import io.vigie.gateway.AgentSettings;
import io.vigie.gateway.Clock;
import io.vigie.gateway.EventFlags;
import io.vigie.gateway.HttpMethods;
import io.vigie.gateway.KeyTypes;
import io.vigie.gateway.RequestRecord;
import io.vigie.gateway.VigieAgent;
import io.vigie.gateway.directive.Rule;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.apache.axis2.AxisFault;
import org.apache.synapse.AbstractExtendedSynapseHandler;
import org.apache.synapse.MessageContext;
import org.apache.synapse.commons.json.JsonUtil;
import org.apache.synapse.core.axis2.Axis2MessageContext;
import org.apache.synapse.core.axis2.Axis2Sender;
import org.apache.synapse.transport.passthru.util.RelayUtils;
import org.wso2.carbon.apimgt.gateway.handlers.security.AuthenticationContext;

/**
 * vigie's WSO2 API Manager 4.x global handler. Register it in {@code deployment.toml}:
 * <pre>
 * [synapse_handlers.vigie]
 * enabled = true
 * class = "io.vigie.wso2.VigieSynapseHandler"
 * </pre>
 *
 * <p>Thin on purpose: it reads what WSO2 already put in the message context and hands it to the
 * gateway-agnostic {@link VigieAgent}. Every method catches everything (an error is counted, the
 * message goes on as if vigie were absent): nothing escapes into mediation.
 *
 * <ul>
 *   <li>request in-flow: notes the request start time;</li>
 *   <li>request out-flow (after WSO2's authentication and throttling, before the backend call):
 *       consults the directive table; an ENFORCE directive answers 429 with WSO2's fault body and
 *       stops the request; then notes the backend start time;</li>
 *   <li>response in-flow: notes the backend end time;</li>
 *   <li>response out-flow (successes and faults alike): captures the request and offers it.</li>
 * </ul>
 * Global handlers get no parameters in APIM 4.x: settings come from system properties, the
 * environment or a properties file ({@link AgentSettings}).
 */
public class VigieSynapseHandler extends AbstractExtendedSynapseHandler {
    private static final Logger LOG = Logger.getLogger(VigieSynapseHandler.class.getName());

    // MessageContext property names, as WSO2 APIM 4.x sets them (carbon-apimgt
    // APIMgtGatewayConstants / APIConstants, analytics Constants; Synapse SynapseConstants).
    static final String API_NAME = "api.ut.api";
    static final String API_VERSION = "api.ut.version";
    static final String API_CONTEXT = "api.ut.context";
    static final String HTTP_METHOD = "api.ut.HTTP_METHOD";
    static final String REST_API_CONTEXT = "REST_API_CONTEXT";
    static final String REST_API_VERSION = "SYNAPSE_REST_API_VERSION";
    static final String ELECTED_RESOURCE = "API_ELECTED_RESOURCE";
    static final String FULL_REQUEST_PATH = "REST_FULL_REQUEST_PATH";
    static final String AUTH_CONTEXT = "__API_AUTH_CONTEXT";
    static final String APPLICATION_NAME = "api.ut.application.name";
    static final String KEY_TYPE = "AM_KEY_TYPE";
    static final String ERROR_CODE = "ERROR_CODE";
    static final String ERROR_MESSAGE = "ERROR_MESSAGE";
    static final String ERROR_DETAIL = "ERROR_DETAIL";
    static final String THROTTLED_OUT_REASON = "THROTTLED_OUT_REASON";
    static final String CACHE_HIT = "api.analytics.cacheHit";
    static final String ANALYTICS_REQUEST_START = "apim.analytics.request.start.time";
    static final String ANALYTICS_BACKEND_START = "apim.analytics.backend.start.time";
    static final String ANALYTICS_BACKEND_END = "apim.analytics.backend.end.time";
    // on the Axis2 message context
    static final String HTTP_SC = "HTTP_SC";
    static final String AXIS2_HTTP_METHOD = "HTTP_METHOD";
    static final String TRANSPORT_HEADERS = "TRANSPORT_HEADERS";
    static final String MESSAGE_BUILDER_INVOKED = "message.builder.invoked";
    // vigie's own
    static final String START_US = "vigie.request.start.us";
    static final String BACKEND_START_US = "vigie.backend.start.us";
    static final String BACKEND_END_US = "vigie.backend.end.us";
    static final String CHECKED = "vigie.checked";
    static final String REFUSED = "vigie.refused";

    /** HTTP status of a refusal: WSO2's throttling answers 429 too. */
    static final int TOO_MANY_REQUESTS = 429;

    private final VigieAgent agent;
    private final Clock clock;
    private volatile boolean authContextUsable = true;

    /** The constructor Synapse calls (by reflection, no arguments). */
    public VigieSynapseHandler() {
        this(Shared.agent(), Clock.SYSTEM);
    }

    /** For tests and other entry points: a given agent (null = disabled) and clock. */
    public VigieSynapseHandler(VigieAgent agent, Clock clock) {
        this.agent = agent;
        this.clock = clock;
    }

    @Override
    public boolean handleRequestInFlow(MessageContext ctx) {
        if (agent == null) {
            return true;
        }
        try {
            ctx.setProperty(START_US, clock.wallMicros());
        } catch (Throwable t) {
            fault(t);
        }
        return true;
    }

    @Override
    public boolean handleRequestOutFlow(MessageContext ctx) {
        if (agent == null) {
            return true;
        }
        try {
            if (ctx.getProperty(CHECKED) == null) { // once per request, whatever the number of sends
                ctx.setProperty(CHECKED, Boolean.TRUE);
                AuthenticationContext auth = auth(ctx);
                String app = null;
                if (auth != null) {
                    try {
                        app = auth.getApplicationUUID();
                    } catch (LinkageError e) {
                        authUnusable(e);
                    }
                }
                Rule refusal = agent.check(app, string(ctx.getProperty(API_NAME)), string(ctx.getProperty(API_VERSION)));
                if (refusal != null) {
                    return !refuse(ctx, refusal);
                }
                ctx.setProperty(BACKEND_START_US, clock.wallMicros());
            }
        } catch (Throwable t) {
            fault(t);
        }
        return true;
    }

    @Override
    public boolean handleResponseInFlow(MessageContext ctx) {
        if (agent == null) {
            return true;
        }
        try {
            ctx.setProperty(BACKEND_END_US, clock.wallMicros());
        } catch (Throwable t) {
            fault(t);
        }
        return true;
    }

    @Override
    public boolean handleResponseOutFlow(MessageContext ctx) {
        if (agent == null) {
            return true;
        }
        try {
            capture(ctx);
        } catch (Throwable t) {
            fault(t);
        }
        return true;
    }

    @Override
    public boolean handleError(MessageContext ctx) {
        return true; // faults reach the client through the fault sequence and handleResponseOutFlow
    }

    @Override
    public boolean handleServerInit() {
        return true;
    }

    @Override
    public boolean handleServerShutDown() {
        try {
            Shared.close();
        } catch (Throwable t) {
            fault(t);
        }
        return true;
    }

    @Override
    public boolean handleArtifactDeployment(String artifactName, String artifactType, String startTime) {
        return true;
    }

    @Override
    public boolean handleArtifactUnDeployment(String artifactName, String artifactType, String unDeployTime) {
        return true;
    }

    /** Reads the request from the context into this thread's record and offers it. */
    void capture(MessageContext ctx) {
        String api = string(ctx.getProperty(API_NAME));
        if (api == null) {
            return; // not API traffic (health checks, admin services)
        }
        org.apache.axis2.context.MessageContext axis2 =
                ctx instanceof Axis2MessageContext ? ((Axis2MessageContext) ctx).getAxis2MessageContext() : null;
        long now = clock.wallMicros();
        RequestRecord r = agent.record().apiName(api);
        String version = string(ctx.getProperty(API_VERSION));
        r.apiVersion(version != null ? version : string(ctx.getProperty(REST_API_VERSION)));
        String context = string(ctx.getProperty(API_CONTEXT));
        r.apiContext(context != null ? context : string(ctx.getProperty(REST_API_CONTEXT)));
        r.resourceTemplate(string(ctx.getProperty(ELECTED_RESOURCE)));
        String method = string(ctx.getProperty(HTTP_METHOD));
        if (method == null && axis2 != null) {
            method = string(axis2.getProperty(AXIS2_HTTP_METHOD));
        }
        r.httpMethod(HttpMethods.of(method));

        AuthenticationContext auth = auth(ctx);
        String keyType = null;
        if (auth != null) {
            try {
                r.applicationId(auth.getApplicationUUID()).applicationName(auth.getApplicationName())
                        .applicationOwner(auth.getSubscriber()).subscriptionTier(auth.getTier());
                keyType = auth.getKeyType();
            } catch (LinkageError e) {
                authUnusable(e);
            }
        }
        if (r.applicationName() == null) {
            r.applicationName(string(ctx.getProperty(APPLICATION_NAME)));
        }
        if (keyType == null) {
            keyType = string(ctx.getProperty(KEY_TYPE));
        }
        r.keyType(KeyTypes.of(keyType));

        int flags = 0;
        Object errorCode = ctx.getProperty(ERROR_CODE);
        int code = (int) integer(errorCode, 0);
        if (errorCode != null) {
            flags |= EventFlags.FAULT;
        }
        r.errorCode(code);
        if (ctx.getProperty(THROTTLED_OUT_REASON) != null || (code >= 900800 && code <= 900899)) {
            flags |= EventFlags.THROTTLED;
        }
        Object cacheHit = ctx.getProperty(CACHE_HIT);
        if (Boolean.TRUE.equals(cacheHit) || "true".equals(cacheHit)) {
            flags |= EventFlags.CACHE_HIT;
        }
        if (ctx.getProperty(REFUSED) != null) {
            flags |= EventFlags.REFUSED_BY_DIRECTIVE;
        }
        r.flags(flags);

        if (axis2 != null) {
            r.httpStatus((int) integer(axis2.getProperty(HTTP_SC), 0));
            Object headers = axis2.getProperty(TRANSPORT_HEADERS);
            if (headers instanceof Map) {
                r.responseBytes(integer(((Map<?, ?>) headers).get("Content-Length"), -1));
            }
        }

        long start = integer(ctx.getProperty(START_US), 0);
        if (start <= 0) {
            start = integer(ctx.getProperty(ANALYTICS_REQUEST_START), 0) * 1000L;
        }
        if (start > 0) {
            r.eventTimeUs(start).latencyUs(Math.max(0, now - start));
        } else {
            r.eventTimeUs(now);
        }
        long backendStart = integer(ctx.getProperty(BACKEND_START_US), 0);
        long backendEnd = integer(ctx.getProperty(BACKEND_END_US), 0);
        if (backendStart <= 0 || backendEnd <= 0) {
            backendStart = integer(ctx.getProperty(ANALYTICS_BACKEND_START), 0) * 1000L;
            backendEnd = integer(ctx.getProperty(ANALYTICS_BACKEND_END), 0) * 1000L;
        }
        if (backendStart > 0 && backendEnd >= backendStart) {
            r.backendLatencyUs(backendEnd - backendStart);
        }
        Object path = ctx.getProperty(FULL_REQUEST_PATH);
        if (path instanceof String) {
            r.uriHash(fnv1a64((String) path));
        }
        agent.offer(r);
    }

    /**
     * Answers 429 with WSO2's fault body in place of the backend, the way WSO2's own throttle
     * handler does. Returns {@code true} when the refusal was sent (the request stops there);
     * {@code false} lets the request go on untouched when nothing could be changed yet.
     */
    boolean refuse(MessageContext ctx, Rule rule) {
        if (!(ctx instanceof Axis2MessageContext)) {
            return false;
        }
        org.apache.axis2.context.MessageContext axis2 = ((Axis2MessageContext) ctx).getAxis2MessageContext();
        ctx.setProperty(ERROR_CODE, rule.errorCode());
        ctx.setProperty(ERROR_MESSAGE, rule.block() ? "Message blocked" : "Message throttled out");
        ctx.setProperty(ERROR_DETAIL, rule.reason());
        ctx.setProperty(REFUSED, Boolean.TRUE);
        // as WSO2's own throttle handler does: the response is the new payload, not the request's
        // pass-through pipe (PassThroughConstants.MESSAGE_BUILDER_INVOKED)
        axis2.setProperty(MESSAGE_BUILDER_INVOKED, Boolean.TRUE);
        try {
            RelayUtils.discardRequestMessage(axis2); // the request body must not be echoed back
        } catch (AxisFault e) {
            LOG.log(Level.FINE, "vigie: could not discard the refused request's body", e);
        }
        try {
            JsonUtil.getNewJsonPayload(axis2, rule.faultJson(), true, true);
        } catch (AxisFault e) {
            fault(e);
            return false; // payload untouched: let the request through rather than send garbage
        }
        axis2.setProperty("messageType", "application/json");
        axis2.setProperty("ContentType", "application/json");
        axis2.setProperty(HTTP_SC, TOO_MANY_REQUESTS);
        axis2.removeProperty("NO_ENTITY_BODY");
        ctx.setResponse(true);
        ctx.setProperty("RESPONSE", "true");
        ctx.setTo(null);
        Axis2Sender.sendBack(ctx);
        return true;
    }

    private AuthenticationContext auth(MessageContext ctx) {
        if (!authContextUsable) {
            return null;
        }
        try {
            Object o = ctx.getProperty(AUTH_CONTEXT);
            return o instanceof AuthenticationContext ? (AuthenticationContext) o : null;
        } catch (LinkageError e) {
            authUnusable(e);
            return null;
        }
    }

    /** The APIM gateway classes are not visible to this jar (or differ): use the api.ut.* names. */
    private void authUnusable(LinkageError e) {
        authContextUsable = false;
        LOG.log(Level.WARNING, "vigie: WSO2's AuthenticationContext is not usable; application ids unknown", e);
    }

    private void fault(Throwable t) {
        agent.countAdapterError();
        LOG.log(Level.FINE, "vigie: handler error (request unaffected)", t);
    }

    static String string(Object o) {
        if (o instanceof String) {
            String s = (String) o;
            return s.isEmpty() ? null : s;
        }
        return null;
    }

    /** An Integer/Long/String number as a long, without allocating; {@code def} otherwise. */
    static long integer(Object o, long def) {
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
    static long fnv1a64(String s) {
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

    /** The one agent of the gateway process, shared by every handler instance Synapse makes. */
    static final class Shared {
        private static VigieAgent agent;
        private static boolean started;

        private Shared() {}

        static synchronized VigieAgent agent() {
            if (!started) {
                started = true;
                try {
                    AgentSettings s = AgentSettings.fromEnvironment();
                    for (String p : s.problems()) {
                        LOG.warning("vigie: " + p);
                    }
                    if (s.enabled) {
                        agent = VigieAgent.builder(s).build();
                        LOG.info("vigie: handler started (" + s + ")");
                    } else {
                        LOG.info("vigie: handler disabled (vigie.enabled=false)");
                    }
                } catch (Throwable t) {
                    LOG.log(Level.SEVERE, "vigie: handler could not start; the gateway runs without it", t);
                    agent = null;
                }
            }
            return agent;
        }

        static synchronized void close() {
            if (agent != null) {
                agent.close();
                agent = null;
            }
        }
    }
}
