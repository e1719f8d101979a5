package io.vigie.gateway.directive;

import io.vigie.wire.v1.Directive;
import io.vigie.wire.v1.DirectiveAction;
import io.vigie.wire.v1.DirectiveMode;
import io.vigie.wire.v1.LocalQuota;

/** One directive compiled for the request path. Immutable but for its token bucket. */
public final class Rule {
    /** WSO2's code for a request blocked by a deny policy. */
    public static final int DEFAULT_BLOCK_CODE = 900805;
    /** WSO2's code for a custom throttling policy. */
    public static final int DEFAULT_LIMIT_CODE = 900806;
    /** WSO2's code for an API's hard limit (answered 503). */
    public static final int HARD_LIMIT_CODE = 900801;
    /** WSO2's messages and descriptions (carbon-apimgt {@code APIThrottleConstants}). */
    public static final String BLOCK_MESSAGE = "Message blocked";
    public static final String BLOCK_DESCRIPTION = "You have been blocked from accessing the resource";
    public static final String LIMIT_MESSAGE = "Message throttled out";
    public static final String LIMIT_DESCRIPTION = "You have exceeded your quota";
    public static final String HARD_LIMIT_MESSAGE = "API Limit Reached";
    public static final String HARD_LIMIT_DESCRIPTION = "API not accepting requests";

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
    final int httpStatus;
    final String message;
    final String description;
    final String faultJson;
    final DirectiveTable.Hits hits;

    Rule(Directive d, long nowNanos, DirectiveTable.Hits hits) {
        this(d, TokenBucket.WHOLE, nowNanos, hits);
    }

    /** A rule whose LIMIT bucket holds {@code sharePpm} millionths of the directive's budget. */
    Rule(Directive d, long sharePpm, long nowNanos, DirectiveTable.Hits hits) {
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
                        Integer.toUnsignedLong(d.getLimitBurst()), sharePpm, nowNanos);
        this.expiresAtUs = d.getExpiresAtUs();
        this.errorCode = d.getErrorCode() != 0 ? d.getErrorCode()
                : block ? DEFAULT_BLOCK_CODE : DEFAULT_LIMIT_CODE;
        this.reason = d.getReason();
        // WSO2's status for the code (carbon-apimgt ThrottleHandler): blocked 403, hard limit 503, else 429
        this.httpStatus = errorCode == DEFAULT_BLOCK_CODE ? 403 : errorCode == HARD_LIMIT_CODE ? 503 : 429;
        this.message = errorCode == HARD_LIMIT_CODE ? HARD_LIMIT_MESSAGE : block ? BLOCK_MESSAGE : LIMIT_MESSAGE;
        String base = errorCode == HARD_LIMIT_CODE ? HARD_LIMIT_DESCRIPTION
                : block ? BLOCK_DESCRIPTION : LIMIT_DESCRIPTION;
        // names the directive, so that a support desk tells vigie's refusals from WSO2's own
        this.description = base + " (vigie directive " + id + (reason.isEmpty() ? "" : ": " + reason) + ")";
        this.faultJson = FaultBody.json(errorCode, message, description);
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

    /**
     * The refusal body without {@code nextAccessTime}, built once:
     * {@code {"code":"900805","message":..,"description":..}} (see {@link FaultBody}).
     */
    public String faultJson() {
        return faultJson;
    }

    /** WSO2's HTTP status for this code: 403 blocked (900805), 503 hard limit (900801), else 429. */
    public int httpStatus() {
        return httpStatus;
    }

    /** WSO2's message for the refusal ({@code ERROR_MESSAGE}). */
    public String message() {
        return message;
    }

    /** WSO2's description followed by this directive's id and reason ({@code ERROR_DETAIL}). */
    public String description() {
        return description;
    }

    /**
     * Nanoseconds until this LIMIT's bucket has a token again, {@code -1} for a BLOCK (no
     * retry time).
     */
    public long nanosUntilRetry(long nowNanos) {
        return bucket == null ? -1 : bucket.nanosUntilToken(nowNanos);
    }

    /**
     * The share of its budget this LIMIT holds on this gateway, in millionths ({@link
     * TokenBucket#WHOLE} without a local quota, and for a BLOCK).
     */
    public long sharePpm() {
        return bucket == null ? TokenBucket.WHOLE : bucket.sharePpm();
    }

    /** Gives this LIMIT's bucket a new share, keeping the tokens taken (no-op for a BLOCK). */
    void retune(long sharePpm, long nowNanos) {
        if (bucket != null) {
            bucket.retune(sharePpm, nowNanos);
        }
    }

    /** Why a local quota cannot be used, or {@code null} when it can. */
    static String quotaProblem(LocalQuota q) {
        if (q.getDirectiveId().isEmpty()) {
            return "local quota without directive id";
        }
        long share = Integer.toUnsignedLong(q.getSharePpm());
        if (share < DirectiveLimits.MIN_SHARE_PPM || share > DirectiveLimits.MAX_SHARE_PPM) {
            return "share_ppm " + share + " is outside " + DirectiveLimits.MIN_SHARE_PPM + ".."
                    + DirectiveLimits.MAX_SHARE_PPM;
        }
        if (q.getEpochUs() <= 0) {
            return "epoch_us " + q.getEpochUs() + " is not a time";
        }
        return null;
    }

    public long expiresAtUs() {
        return expiresAtUs;
    }

    private static String emptyToNull(String s) {
        return s == null || s.isEmpty() ? null : s;
    }
}
