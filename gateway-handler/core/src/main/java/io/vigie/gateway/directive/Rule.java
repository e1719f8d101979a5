package io.vigie.gateway.directive;

import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveMode;

/** One directive compiled for the request path. Immutable but for its token bucket. */
public final class Rule {
    /** WSO2's code for a request blocked by a deny policy. */
    public static final int DEFAULT_BLOCK_CODE = 900805;
    /** WSO2's code for a custom throttling policy. */
    public static final int DEFAULT_LIMIT_CODE = 900806;

    final String id;
    final boolean enforce;
    final boolean block;
    final String applicationId;
    final String apiName;
    final String apiVersion;
    final TokenBucket bucket;
    final long expiresAtUs;
    final int errorCode;
    final String reason;
    final String faultJson;
    final DirectiveTable.Hits hits;

    Rule(Directive d, long nowNanos, DirectiveTable.Hits hits) {
        this.id = d.getId();
        this.enforce = d.getMode() == DirectiveMode.DIRECTIVE_MODE_ENFORCE;
        this.block = d.getAction() == DirectiveAction.DIRECTIVE_ACTION_BLOCK;
        this.applicationId = emptyToNull(d.getApplicationId());
        this.apiName = emptyToNull(d.getApiName());
        this.apiVersion = apiName == null ? null : emptyToNull(d.getApiVersion());
        // uint32 on the wire: read unsigned; problem() has checked the ranges
        this.bucket = block ? null
                : new TokenBucket(Integer.toUnsignedLong(d.getLimitRequests()),
                        Integer.toUnsignedLong(d.getLimitPeriodSeconds()) * 1_000_000_000L,
                        Integer.toUnsignedLong(d.getLimitBurst()), nowNanos);
        this.expiresAtUs = d.getExpiresAtUs();
        this.errorCode = d.getErrorCode() != 0 ? d.getErrorCode()
                : block ? DEFAULT_BLOCK_CODE : DEFAULT_LIMIT_CODE;
        this.reason = d.getReason();
        this.faultJson = FaultBody.json(errorCode, block ? "Message blocked" : "Message throttled out",
                reason.isEmpty() ? (block ? "Blocked by a vigie directive" : "Over the limit of a vigie directive")
                        : reason);
        this.hits = hits;
    }

    /**
     * Why a directive cannot be used, or {@code null} when it can: malformed, or a number outside
     * {@link DirectiveLimits}.
     */
    static String problem(Directive d) {
        if (d.getId().isEmpty()) {
            return "directive without id";
        }
        if (d.getMode() != DirectiveMode.DIRECTIVE_MODE_SHADOW
                && d.getMode() != DirectiveMode.DIRECTIVE_MODE_ENFORCE) {
            return "unknown mode " + d.getModeValue();
        }
        if (d.getAction() == DirectiveAction.DIRECTIVE_ACTION_LIMIT) {
            if (d.getLimitRequests() == 0 || d.getLimitPeriodSeconds() == 0) {
                return "a limit needs limit_requests and limit_period_seconds";
            }
            String range = outside("limit_requests", Integer.toUnsignedLong(d.getLimitRequests()),
                    DirectiveLimits.MIN_LIMIT_REQUESTS, DirectiveLimits.MAX_LIMIT_REQUESTS);
            if (range == null) {
                range = outside("limit_period_seconds", Integer.toUnsignedLong(d.getLimitPeriodSeconds()),
                        DirectiveLimits.MIN_LIMIT_PERIOD_SECONDS, DirectiveLimits.MAX_LIMIT_PERIOD_SECONDS);
            }
            if (range == null) {
                range = outside("limit_burst", Integer.toUnsignedLong(d.getLimitBurst()), 0,
                        DirectiveLimits.MAX_LIMIT_BURST);
            }
            if (range != null) {
                return range;
            }
        } else if (d.getAction() != DirectiveAction.DIRECTIVE_ACTION_BLOCK) {
            return "unknown action " + d.getActionValue();
        }
        if (d.getApplicationId().isEmpty() && d.getApiName().isEmpty() && d.getChannel().isEmpty()) {
            return "empty scope (an application, an API or a channel is required)";
        }
        if (!d.getApiVersion().isEmpty() && d.getApiName().isEmpty()) {
            return "api_version needs api_name";
        }
        if (d.getExpiresAtUs() <= 0) {
            return "no expiry";
        }
        return null;
    }

    private static String outside(String field, long value, long min, long max) {
        return value >= min && value <= max ? null : field + " " + value + " is outside " + min + ".." + max;
    }

    public String id() {
        return id;
    }

    public boolean enforce() {
        return enforce;
    }

    public boolean block() {
        return block;
    }

    /** WSO2 error code of the fault body. */
    public int errorCode() {
        return errorCode;
    }

    public String reason() {
        return reason;
    }

    /** The fault body, built once: {@code {"fault":{"code":..,"message":..,"description":..}}}. */
    public String faultJson() {
        return faultJson;
    }

    public long expiresAtUs() {
        return expiresAtUs;
    }

    private static String emptyToNull(String s) {
        return s == null || s.isEmpty() ? null : s;
    }
}
