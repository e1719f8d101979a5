package io.vigie.synapse;

import static io.vigie.synapse.SynapseNames.*;

import io.vigie.gateway.directive.FaultBody;
import io.vigie.gateway.directive.Rule;
import java.text.SimpleDateFormat;
import java.util.Collections;
import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.TimeZone;
import java.util.TreeMap;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Answers a request refused by an ENFORCE directive in place of the backend, as WSO2 APIM 4.x's
 * {@code _throttle_out_handler_} sequence answers its own refusals: the flat JSON body
 * ({@link FaultBody}), WSO2's status for the code ({@link Rule#httpStatus()}), {@code Retry-After}
 * for a limit, the request's {@code Authorization}, {@code Host}, {@code Accept} and
 * {@code X-JWT-Assertion} transport headers removed (they would be echoed to the client), then
 * what {@code _cors_request_handler_} adds when the API has CORS enabled.
 *
 * <p>An operator decided the refusal, so once this has started changing the message the request
 * never goes on to the backend: if the body cannot be set, the answer goes without one (same
 * status); if even sending fails, the request stops there (counted). It is let through only
 * when nothing was touched: a message with no Axis2 context, which cannot be answered at all.
 */
public final class SynapseRefusal<C> {
    private static final Logger LOG = Logger.getLogger(SynapseRefusal.class.getName());

    /** The transport headers {@code _throttle_out_handler_} removes before answering (4.0-4.6). */
    public static final List<String> REMOVED_HEADERS =
            Collections.unmodifiableList(java.util.Arrays.asList("Authorization", "Host", "Accept", "X-JWT-Assertion"));
    /** WSO2's {@code THROTTLED_NEXT_ACCESS_TIME} property, read by the sequence as {@code nextAccessTime}. */
    public static final String NEXT_ACCESS_UTC_TIME = "NEXT_ACCESS_UTC_TIME";
    public static final String RETRY_AFTER = "Retry-After";
    // what _cors_request_handler_ reads (set by WSO2's CORSRequestHandler when the API has CORS)
    public static final String CORS_ENABLED = "CORSConfiguration.Enabled";
    public static final String ALLOW_ORIGIN = "Access-Control-Allow-Origin";
    public static final String ALLOW_METHODS = "Access-Control-Allow-Methods";
    public static final String ALLOW_HEADERS = "Access-Control-Allow-Headers";
    public static final String ALLOW_CREDENTIALS = "Access-Control-Allow-Credentials";
    public static final String EXPOSE_HEADERS = "Access-Control-Expose-Headers";

    private final SynapseCapture<C> capture;
    private final MessageAccess<C> access;
    private final boolean captureBeforeSending;

    /**
     * @param captureBeforeSending true where sending back does not run the adapter's response
     *     flow (Apache Synapse's API handlers): the refused request is then captured here
     */
    public SynapseRefusal(SynapseCapture<C> capture, boolean captureBeforeSending) {
        this.capture = capture;
        this.access = capture.access();
        this.captureBeforeSending = captureBeforeSending;
    }

    /**
     * Answers the refusal. {@code true}: the request stops here (answered, or at worst stopped);
     * {@code false}: nothing was changed and the request goes on (no Axis2 context).
     */
    public boolean refuse(C ctx, Rule rule) {
        if (!access.canRespond(ctx)) {
            return false;
        }
        try {
            respond(ctx, rule);
        } catch (Throwable t) {
            capture.failed(t);
            minimal(ctx, rule);
        }
        return true;
    }

    private void respond(C ctx, Rule rule) {
        long retryNanos = rule.nanosUntilRetry(capture.clock().monotonicNanos());
        String nextAccess = retryNanos < 0 ? null
                : nextAccessTime(capture.clock().wallMicros() / 1000 + (retryNanos + 999_999) / 1_000_000);
        String body = nextAccess == null ? rule.faultJson()
                : FaultBody.json(rule.errorCode(), rule.message(), rule.description(), nextAccess);
        access.setProperty(ctx, ERROR_CODE, rule.errorCode());
        access.setProperty(ctx, ERROR_MESSAGE, rule.message());
        access.setProperty(ctx, ERROR_DETAIL, rule.description());
        if (nextAccess != null) {
            access.setProperty(ctx, NEXT_ACCESS_UTC_TIME, nextAccess);
        }
        access.setProperty(ctx, REFUSED, Boolean.TRUE);

        Map<String, Object> headers = headers(ctx);
        for (String h : REMOVED_HEADERS) {
            headers.remove(h);
        }
        if (retryNanos >= 0) {
            headers.put(RETRY_AFTER, Long.toString(Math.max(1, (retryNanos + 999_999_999L) / 1_000_000_000L)));
        }
        cors(ctx, headers);

        // the answer is the new payload, not the request's pass-through pipe
        access.setAxis2Property(ctx, MESSAGE_BUILDER_INVOKED, Boolean.TRUE);
        try {
            access.discardRequestBody(ctx); // after the body was built; it must not be echoed back
        } catch (Exception e) {
            LOG.log(Level.FINE, "vigie: could not discard the refused request's body", e);
        }
        boolean withBody;
        try {
            access.setJsonPayload(ctx, body);
            withBody = true;
            access.setProperty(ctx, REFUSAL_BYTES, utf8Length(body));
            // a POST's own Content-Type would otherwise be echoed over the JSON answer
            headers.put("Content-Type", "application/json");
        } catch (Exception e) {
            capture.failed(e);
            withBody = false;
            access.setProperty(ctx, REFUSAL_BYTES, 0);
        }
        finish(ctx, rule, withBody);
    }

    /** After a failure half-way: the same status, no body, never the backend. */
    private void minimal(C ctx, Rule rule) {
        try {
            access.setProperty(ctx, REFUSED, Boolean.TRUE);
            access.setProperty(ctx, REFUSAL_BYTES, 0);
            access.setProperty(ctx, ERROR_CODE, rule.errorCode());
            access.setAxis2Property(ctx, MESSAGE_BUILDER_INVOKED, Boolean.TRUE);
            finish(ctx, rule, false);
        } catch (Throwable t) {
            capture.failed(t); // the request stops here unanswered rather than reach the backend
        }
    }

    private void finish(C ctx, Rule rule, boolean withBody) {
        if (withBody) {
            access.setAxis2Property(ctx, MESSAGE_TYPE, "application/json");
            access.setAxis2Property(ctx, CONTENT_TYPE, "application/json");
            access.removeAxis2Property(ctx, NO_ENTITY_BODY);
        } else {
            access.setAxis2Property(ctx, NO_ENTITY_BODY, Boolean.TRUE);
        }
        access.setAxis2Property(ctx, HTTP_SC, rule.httpStatus());
        access.setProperty(ctx, RESPONSE, "true");
        if (captureBeforeSending) {
            try {
                capture.capture(ctx);
            } catch (RuntimeException e) {
                capture.failed(e);
            }
        }
        try {
            access.sendBack(ctx);
        } catch (Exception e) {
            capture.failed(e);
        }
    }

    /** {@code _cors_request_handler_}: only when the API has CORS enabled; never overrides a header already set. */
    private void cors(C ctx, Map<String, Object> headers) {
        Object enabled = access.property(ctx, CORS_ENABLED);
        if (enabled == null || !"true".equals(enabled.toString())) {
            return;
        }
        boolean options = "OPTIONS".equals(access.property(ctx, HTTP_METHOD));
        copy(ctx, headers, ALLOW_ORIGIN, true);
        copy(ctx, headers, ALLOW_METHODS, options);
        copy(ctx, headers, ALLOW_HEADERS, options);
        copy(ctx, headers, ALLOW_CREDENTIALS, true);
        copy(ctx, headers, EXPOSE_HEADERS, options);
    }

    private void copy(C ctx, Map<String, Object> headers, String name, boolean when) {
        if (!when || headers.get(name) != null) {
            return;
        }
        Object v = access.property(ctx, name);
        if (v != null && !v.toString().isEmpty()) {
            headers.put(name, v.toString());
        }
    }

    @SuppressWarnings("unchecked")
    private Map<String, Object> headers(C ctx) {
        Object h = access.axis2Property(ctx, TRANSPORT_HEADERS);
        if (h instanceof Map) {
            return (Map<String, Object>) h;
        }
        Map<String, Object> fresh = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        access.setAxis2Property(ctx, TRANSPORT_HEADERS, fresh);
        return fresh;
    }

    /** WSO2's format for {@code nextAccessTime}: {@code yyyy-MMM-dd HH:mm:ss+0000 UTC}. */
    public static String nextAccessTime(long epochMillis) {
        SimpleDateFormat f = new SimpleDateFormat("yyyy-MMM-dd HH:mm:ssZ", java.util.Locale.ENGLISH);
        f.setTimeZone(TimeZone.getTimeZone("UTC"));
        return f.format(new Date(epochMillis)) + " UTC";
    }

    /** Bytes of {@code s} in UTF-8, counted without encoding it. */
    static int utf8Length(String s) {
        int n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                n++;
            } else if (c < 0x800) {
                n += 2;
            } else if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                n += 4;
                i++;
            } else {
                n += 3;
            }
        }
        return n;
    }
}
