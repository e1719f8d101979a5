package io.vigie.synapse3;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.UUID;
import org.apache.synapse.MessageContext;
import org.apache.synapse.core.axis2.Axis2MessageContext;
import org.apache.synapse.rest.Handler;

/**
 * Test stand-in for the per-API handlers WSO2 runs before vigie's, setting what they set on every
 * request of the API: {@code API_UUID} (APIMgtLatencyStatsHandler), {@code api.ut.HTTP_METHOD},
 * and for the "payments" API the CORS properties {@code _cors_request_handler_} reads
 * (CORSRequestHandler: the allowed origin only when the request's Origin is allowed).
 */
public class Wso2LikeHandler implements Handler {
    /** CORS configuration of the "payments" API, as WSO2 keeps it in the message context. */
    static final String ALLOWED_ORIGIN = "https://shop.example";
    static final Map<String, String> CORS = Map.of(
            "Access-Control-Allow-Methods", "GET,OPTIONS",
            "Access-Control-Allow-Headers", "authorization,Content-Type",
            "Access-Control-Allow-Credentials", "true",
            "Access-Control-Expose-Headers", "X-Request-Id");

    /** The API UUID this stand-in gives an API (WSO2 generates one per API). */
    static String uuidOf(String api) {
        return UUID.nameUUIDFromBytes(api.getBytes(StandardCharsets.UTF_8)).toString();
    }

    @Override
    public boolean handleRequest(MessageContext ctx) {
        Object api = ctx.getProperty("SYNAPSE_REST_API");
        if (api instanceof String) {
            ctx.setProperty("API_UUID", uuidOf((String) api));
        }
        org.apache.axis2.context.MessageContext axis2 = ((Axis2MessageContext) ctx).getAxis2MessageContext();
        ctx.setProperty("api.ut.HTTP_METHOD", axis2.getProperty("HTTP_METHOD"));
        if ("payments".equals(api)) {
            ctx.setProperty("CORSConfiguration.Enabled", Boolean.TRUE);
            Object headers = axis2.getProperty(org.apache.axis2.context.MessageContext.TRANSPORT_HEADERS);
            Object origin = headers instanceof Map ? ((Map<?, ?>) headers).get("Origin") : null;
            if (ALLOWED_ORIGIN.equals(origin)) {
                ctx.setProperty("Access-Control-Allow-Origin", ALLOWED_ORIGIN);
            }
            CORS.forEach(ctx::setProperty);
        }
        return true;
    }

    @Override
    public boolean handleResponse(MessageContext ctx) {
        return true;
    }
}
