package io.vigie.gateway;

/**
 * The WSO2 error-code families the handler relies on, in one place (carbon-apimgt
 * {@code APIThrottleConstants}, {@code APISecurityConstants}; Synapse's transport and endpoint
 * codes). The same taxonomy as the sidecar's {@code vigie.state.codes}, checked against its
 * vector {@code tests/vectors/taxonomy/codes.json} by {@code Wso2CodesTest} when that file is present.
 *
 * <p>"Throttled" is taken from the code alone (or from vigie's own refusal, see
 * {@link #throttled}): WSO2 also sets {@code THROTTLED_OUT_REASON = HARD_LIMIT_EXCEEDED} in
 * exception paths that throttle nothing, and a backend's own 429 is not throttling.
 */
public final class Wso2Codes {
    /** Throttling (answered 429, 503 for 900801, 403 for 900805): 900800 API limit ... 900809. */
    public static final int THROTTLING_MIN = 900_800;
    public static final int THROTTLING_MAX = 900_899;
    /** Authentication and authorization failures, e.g. 900901 invalid credentials. */
    public static final int AUTHENTICATION_MIN = 900_900;
    public static final int AUTHENTICATION_MAX = 900_999;
    /** Backend (endpoint) failures: 101500-101599, and 303001 (endpoint suspended). */
    public static final int BACKEND_MIN = 101_500;
    public static final int BACKEND_MAX = 101_599;
    public static final int BACKEND_SUSPENDED = 303_001;
    /** Transport failures of the pass-through transport: 101000-101499. */
    public static final int TRANSPORT_MIN = 101_000;
    public static final int TRANSPORT_MAX = 101_499;

    private Wso2Codes() {}

    public static boolean isThrottling(int code) {
        return code >= THROTTLING_MIN && code <= THROTTLING_MAX;
    }

    public static boolean isAuthentication(int code) {
        return code >= AUTHENTICATION_MIN && code <= AUTHENTICATION_MAX;
    }

    public static boolean isBackend(int code) {
        return (code >= BACKEND_MIN && code <= BACKEND_MAX) || code == BACKEND_SUSPENDED;
    }

    public static boolean isTransport(int code) {
        return code >= TRANSPORT_MIN && code <= TRANSPORT_MAX;
    }

    /** The family's name as the sidecar's taxonomy spells it: throttling, authentication, backend, transport, other. */
    public static String family(int code) {
        if (isThrottling(code)) {
            return "throttling";
        }
        if (isAuthentication(code)) {
            return "authentication";
        }
        if (isBackend(code)) {
            return "backend";
        }
        if (isTransport(code)) {
            return "transport";
        }
        return "other";
    }

    /**
     * Whether an event counts as throttled: a WSO2 throttling code, or the {@link EventFlags#THROTTLED}
     * bit (which the handler sets for exactly those codes and for vigie's own refusals).
     */
    public static boolean throttled(int code, int flags) {
        return isThrottling(code) || (flags & EventFlags.THROTTLED) != 0;
    }
}
